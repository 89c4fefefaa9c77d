//! Tests driven by the router's own route table (`http::route_table`), not by hand-kept lists:
//! every form refuses a missing or wrong CSRF token whoever calls it, every page that shows
//! PHI wrote an audit event for that very request, and every page switched to Spanish is in
//! Spanish with no catalog key in place of words.

use crate::common::{location, patient_of, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::http::{RouteInfo, RouteKind};
use patriotpay_app::urls::Url;
use reqwest::{Method, StatusCode};

both_backends!(
    every_form_refuses_a_missing_or_wrong_token,
    every_page_showing_phi_wrote_an_audit_event,
    every_page_in_spanish_shows_words_not_keys,
);

/// A route template with every `{parameter}` replaced.
fn fill(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(value);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[test]
fn fill_replaces_parameters() {
    assert_eq!(fill("/receipt/{payment}", "pay_1"), "/receipt/pay_1");
    assert_eq!(fill("/verify", "x"), "/verify");
}

#[tokio::test]
async fn every_url_is_routed_and_every_route_has_a_url() {
    let app = TestApp::start(Backend::Sqlite).await;
    let table = patriotpay::http::route_table(app.state());
    let routed: Vec<&str> = table.iter().map(|r| r.path).collect();
    for url in Url::ALL {
        assert!(
            routed.contains(&url.template()),
            "{} has no route",
            url.template()
        );
    }
    for r in &table {
        assert!(
            Url::ALL.iter().any(|u| u.template() == r.path),
            "route {} is not named in Url",
            r.path
        );
    }
    app.finish().await;
}

async fn every_form_refuses_a_missing_or_wrong_token(backend: Backend) {
    let app = TestApp::start(backend).await;
    let table = patriotpay::http::route_table(app.state());
    let posts: Vec<&RouteInfo> = table.iter().filter(|r| r.method == Method::POST).collect();
    // The only POSTs without the token are the processor's and Twilio's webhooks, which prove
    // themselves by signature, and the statement API, by the practice's API key (no session: a
    // browser's cookies carry nothing there); everything else is a form and carries the CSRF
    // layer.
    let unchecked: Vec<&str> = posts
        .iter()
        .filter(|r| !r.kind.is_form())
        .map(|r| r.path)
        .collect();
    assert_eq!(
        unchecked,
        [
            Url::StripeWebhook.template(),
            Url::TwilioStatus.template(),
            Url::TwilioInbound.template(),
            Url::ApiStatements.template()
        ]
    );
    let forms: Vec<&RouteInfo> = posts.into_iter().filter(|r| r.kind.is_form()).collect();
    assert!(forms.len() >= 25, "{} forms in the table", forms.len());
    for saved_cards in [Url::AccountCardSave, Url::AccountCardRemove] {
        assert!(
            forms.iter().any(|r| r.path == saved_cards.template()),
            "{} is a CSRF-checked form",
            saved_cards.template()
        );
    }

    // Callers in every state a form can meet: none at all, a verified pay-link visitor, a
    // signed-in member, a signed-in staff member with the second factor. The check runs before
    // any caller extractor, so each gets 403 rather than a redirect to its own next step.
    let anonymous = Browser::new(&app);
    let visitor = app.verified_visitor(1).await;
    let (member, _) = app.signed_in_member(2, "routes.member@example.org").await;
    let (staff, _) = app
        .signed_in_staff("routes.staff@example.org", Role::PracticeAdmin)
        .await;
    for (who, b) in [
        ("anonymous", &anonymous),
        ("visitor", &visitor),
        ("member", &member),
        ("staff", &staff),
    ] {
        for r in &forms {
            let path = fill(r.path, "x");
            let missing = b.post(&path, &[]).await;
            assert_eq!(
                missing.status(),
                StatusCode::FORBIDDEN,
                "{who}: POST {path} without a token"
            );
            let wrong = b.post(&path, &[("csrf", "not-the-token")]).await;
            assert_eq!(
                wrong.status(),
                StatusCode::FORBIDDEN,
                "{who}: POST {path} with a wrong token"
            );
        }
    }
    // The right token gets past the check (sign-out is the one form every session may post).
    let token = visitor.csrf(&Url::Summary.path()).await;
    let r = visitor
        .post(&Url::SignOut.path(), &[("csrf", &token)])
        .await;
    assert_eq!(location(&r), Url::SignedOut.path());
    app.finish().await;
}

/// Every demo patient's name and every service description: what must never be shown without
/// an audit event naming the request.
fn phi_values() -> Vec<&'static str> {
    let mut v = vec![];
    for p in &patriotpay::demo::PATIENTS {
        v.push(p.first_name);
        v.push(p.last_name);
        for line in p.lines {
            v.push(line.1);
        }
    }
    v
}

/// The page's visible text: tags and their attributes (tokens, ids) dropped, so a random token
/// that happens to spell a name is not mistaken for one.
fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    crate::common::text(&out)
}

/// Whether the page shows any of `values`: whole words for one-word values (a first name
/// inside another word is not that name), the phrase for the others.
fn shows_any(html: &str, values: &[&str]) -> bool {
    let text = visible_text(html);
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .collect();
    values.iter().any(|v| {
        if v.contains(' ') {
            text.contains(v)
        } else {
            words.contains(v)
        }
    })
}

#[test]
fn phi_is_found_in_text_not_in_attributes() {
    assert!(shows_any("<p>Avery Quintero</p>", &["Avery"]));
    assert!(shows_any(
        "<td>Office visit, established patient</td>",
        &["Office visit, established patient"]
    ));
    assert!(!shows_any(r#"<input name="csrf" value="xSamQ">"#, &["Sam"]));
    assert!(!shows_any("<p>Sample text</p>", &["Sam"]));
}

/// What a crawl of one route saw.
struct Seen {
    path: String,
    status: StatusCode,
    shows_phi: bool,
    audited: bool,
}

async fn crawl(app: &TestApp, b: &Browser, path: &str) -> Seen {
    let r = b.get(path).await;
    let status = r.status();
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let body = r.text().await.expect("body");
    let shows_phi = shows_any(&body, &phi_values());
    let audited = app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = '{request_id}'"
        ))
        .await
        > 0;
    Seen {
        path: path.to_owned(),
        status,
        shows_phi,
        audited,
    }
}

/// Everyone who sees pages, each with what they need to see them: patient 1 paid $5 from their
/// link (so a checkout, a payment and a receipt exist), patient 1's own account, a practice
/// admin, and a verified guarantor invitation; `path` fills a route's parameters.
struct Cast {
    visitor: Browser,
    member: Browser,
    staff: Browser,
    invitee: Browser,
    pages: Vec<RouteInfo>,
    checkout: String,
    payment: String,
    query: String,
    statement: patriotpay::ids::StatementId,
    patient: patriotpay::ids::PatientId,
}

impl Cast {
    fn browsers(&self) -> [&Browser; 4] {
        [&self.visitor, &self.member, &self.staff, &self.invitee]
    }

    fn path(&self, template: &str) -> String {
        let p = if template.contains("{checkout}") {
            fill(template, &self.checkout)
        } else if template.contains("{payment}") {
            fill(template, &self.payment)
        } else if template.contains("{statement}") {
            fill(template, self.statement.as_str())
        } else if template.contains("{patient}") {
            fill(template, self.patient.as_str())
        } else {
            template.to_owned()
        };
        if p.contains("/return/") {
            format!("{p}?{}", self.query)
        } else {
            p
        }
    }
}

async fn cast(app: &TestApp) -> Cast {
    let table = patriotpay::http::route_table(app.state());

    // Patient 1 pays $5 from their link, so a checkout, a payment and a receipt exist.
    let visitor = Browser::new(app);
    visitor.verified_patient1(app).await;
    let checkout_url = location(&visitor.pay("5.00").await);
    let back = location(&visitor.card(&checkout_url, "4242 4242 4242 4242").await);
    let back_path = back.trim_start_matches(&app.url).to_owned();
    let (return_path, query) = back_path.split_once('?').expect("session id");
    let checkout = return_path
        .rsplit('/')
        .next()
        .expect("checkout id")
        .to_owned();
    let receipt = location(&visitor.get(&back_path).await);
    let payment = receipt.rsplit('/').next().expect("payment id").to_owned();
    let statement = app.statement_of(1).await;
    let patient = patient_of(app, 1).await;

    // A member (patient 1's own account), staff, and a verified guarantor invitation.
    let (member, _) = app.signed_in_member(1, "routes.avery@example.org").await;
    let (staff, _) = app
        .signed_in_staff("routes.admin@example.org", Role::PracticeAdmin)
        .await;
    let now = app.state().clock.now();
    let (invitation, _) = patriotpay::guarantors::invite(
        app.db().pool(),
        &app.tenant,
        &patient_of(app, 4).await,
        "test",
        now,
    )
    .await
    .expect("invitation");
    let invitee = {
        let mut data = patriotpay::http::session::SessionData {
            created_at: now,
            last_seen: now,
            csrf: "t".repeat(32),
            ..Default::default()
        };
        data.invitation = Some(patriotpay::http::session::InviteVisit {
            invitation_id: Some(invitation.as_str().to_owned()),
            verified: true,
        });
        app.browser_with_session(data).await
    };

    // Pages that swap a token for a new session are left out: they would end the caller's.
    let pages: Vec<RouteInfo> = table
        .into_iter()
        .filter(|r| r.method == Method::GET && r.kind != RouteKind::Machine)
        .filter(|r| !r.path.contains("{token}"))
        .collect();
    Cast {
        visitor,
        member,
        staff,
        invitee,
        pages,
        checkout,
        payment,
        query: query.to_owned(),
        statement,
        patient,
    }
}

async fn every_page_showing_phi_wrote_an_audit_event(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cast = cast(&app).await;
    let Cast {
        ref staff,
        ref statement,
        ref patient,
        ref payment,
        ..
    } = cast;
    let mut seen = vec![];
    for b in cast.browsers() {
        for r in &cast.pages {
            let s = crawl(&app, b, &cast.path(r.path)).await;
            if r.kind == RouteKind::PhiPage && s.status.is_success() {
                assert!(
                    s.audited,
                    "GET {} (a PHI page) answered without an audit event",
                    s.path
                );
            }
            seen.push(s);
        }
    }
    // The staff search shows patients' names: a PHI form.
    let csrf = staff.csrf(&Url::Staff.path()).await;
    let search = staff
        .client
        .post(format!("{}{}", app.url, Url::StaffSearch.path()))
        .form(&[
            ("csrf", csrf.as_str()),
            ("last_name", "Quintero"),
            ("dob", "1984-03-14"),
            ("account", ""),
        ])
        .send()
        .await
        .expect("search");
    let request_id = search
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let body = search.text().await.expect("body");
    assert!(
        body.contains("Avery Quintero"),
        "the search found the patient"
    );
    assert!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE request_id = '{request_id}' AND action = 'patient.search.result.view'"
        ))
        .await
            > 0
    );

    for s in &seen {
        assert!(
            !s.shows_phi || s.audited,
            "GET {} ({}) shows PHI but wrote no audit event",
            s.path,
            s.status
        );
    }
    // The crawl reached the pages that do show PHI (else it proves nothing).
    for must in [
        Url::Statement.path(),
        Url::Account.path(),
        Url::AccountStatement(statement.as_str()).path(),
        Url::AccountReceipt(payment).path(),
        Url::GuarantorAccept.path(),
        Url::StaffPatientPayments(patient.as_str()).path(),
        Url::StaffPatient(patient.as_str()).path(),
    ] {
        assert!(
            seen.iter().any(|s| s.path == must && s.shows_phi),
            "the crawl saw PHI on {must}"
        );
    }
    app.finish().await;
}

/// Every message id of the catalog: a page showing one shows a key where words should be.
fn catalog_keys() -> Vec<&'static str> {
    include_str!("../../../app/locales/en.ftl")
        .lines()
        .filter(|l| !l.starts_with(['#', ' ']))
        .filter_map(|l| l.split_once(" = ").map(|(id, _)| id.trim()))
        .collect()
}

async fn every_page_in_spanish_shows_words_not_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cast = cast(&app).await;
    let keys = catalog_keys();
    assert!(keys.len() > 500, "the catalog was read");
    let mut spanish = 0;
    for b in cast.browsers() {
        // The switch, from any page: the same page again, now in Spanish.
        assert_eq!(location(&b.get("/?lang=es").await), "/");
        for r in &cast.pages {
            let path = cast.path(r.path);
            let res = b.get(&path).await;
            let html = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/html"));
            let body = res.text().await.expect("body");
            if !html {
                continue;
            }
            // The sandbox's checkout stands in for the processor's own page, in its language.
            if !body.contains("class=\"sandbox-header\"") {
                assert!(
                    body.contains("<html lang=\"es\""),
                    "GET {path} is not in Spanish"
                );
                spanish += 1;
            }
            let text = visible_text(&body);
            let words: Vec<&str> = text.split_whitespace().collect();
            if let Some(k) = keys.iter().find(|k| words.contains(k)) {
                panic!("GET {path} shows the catalog key {k} instead of words");
            }
        }
    }
    assert!(spanish > 40, "the crawl saw {spanish} Spanish pages");
    app.finish().await;
}
