//! Patient and guarantor accounts over HTTP, on SQLite and PostgreSQL: creating an account after
//! paying from a link, password sign-in (look-alike failures, throttling, idle timeout), guarantor
//! invitations (lock, single use, a second one onto the same account), the household page and
//! what it hides, one payment for several statements, revocation by the patient and by the
//! practice, the member/staff role matrix, and CSRF on every new form.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{csrf_in, get_with_cookie, h1, location, session_cookie, Backend, Browser, TestApp};
use patriotpay::access::Role;
use patriotpay::ids::{PatientId, StatementId, TenantId, UserId};
use reqwest::{Response, StatusCode};

both_backends!(
    account_creation_needs_a_payment_both_answers_and_a_valid_form,
    sign_out_then_sign_in_with_look_alike_failures_and_throttling,
    member_sessions_idle_out_after_thirty_minutes,
    five_wrong_answers_lock_an_invitation,
    invitation_is_single_use_and_a_second_one_joins_the_same_account,
    racing_acceptances_of_one_invitation_give_one_grant,
    racing_loser_is_told_the_invitation_is_gone,
    invitation_expires_after_fourteen_days,
    guarantor_sees_amounts_but_not_clinical_detail,
    guarantor_sees_the_patients_payments_without_their_card,
    one_payment_settles_two_statements_exactly_once,
    a_payment_that_cannot_be_booked_raises_one_alert,
    refused_household_payments_start_no_checkout,
    patient_invites_then_revokes_a_guarantor,
    minors_get_no_account_and_cannot_invite,
    one_account_per_patient_and_the_practice_can_remove_it,
    forgotten_password_is_reset_by_proving_identity_on_a_link,
    practice_admin_revokes_a_guarantor_but_support_agent_cannot,
    member_and_staff_sessions_never_stand_in_for_each_other,
    guarantor_cannot_invite_or_revoke_and_receipts_stay_private,
    new_forms_need_the_token_and_our_origin,
);

const PASSWORD: &str = "correct horse battery staple";
const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;

// ---- helpers ------------------------------------------------------------------------------

/// A catalog message, as the pages render it before HTML escaping.
fn t(key: &str) -> String {
    patriotpay_app::Tr::default().t(key)
}

fn ta(key: &str, args: &[(&str, &str)]) -> String {
    patriotpay_app::Tr::default().ta(key, args)
}

/// A page with HTML's escapes undone, to compare against catalog text.
fn text(html: &str) -> String {
    html.replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Demo patient `n`'s date of birth as (month, day, year) and ZIP.
fn answers(n: usize) -> (String, String, String, String) {
    let p = &patriotpay::demo::PATIENTS[n - 1];
    let (y, rest) = p.dob.split_at(4);
    (
        rest[1..3].to_owned(),
        rest[4..6].to_owned(),
        y.to_owned(),
        p.zip.to_owned(),
    )
}

async fn patient_of(app: &TestApp, n: usize) -> PatientId {
    let stmt = app.statement_of(n).await;
    patriotpay::billing::statement_header(app.db(), &stmt)
        .await
        .expect("query")
        .expect("statement")
        .patient_id
}

/// Posts the household page's pay form: each statement ticked with the amount typed.
async fn pay_statements(
    g: &Browser,
    csrf: &str,
    items: &[(&StatementId, &str)],
) -> reqwest::Response {
    let fields: Vec<(String, &str)> = items
        .iter()
        .flat_map(|(s, amount)| [(format!("pay_{s}"), "1"), (format!("amount_{s}"), *amount)])
        .collect();
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
    form.extend(fields.iter().map(|(k, v)| (k.as_str(), *v)));
    g.post("/account/pay", &form).await
}

async fn balance(app: &TestApp, s: &StatementId) -> i64 {
    patriotpay::billing::balance(app.db().pool(), s)
        .await
        .expect("balance")
        .cents()
}

/// Demo patient `n` opens a fresh pay link, gives the date of birth only, pays $5.00 with the
/// 4242 test card and sees the receipt.
async fn pay_five_dollars_by_link(app: &TestApp, b: &Browser, n: usize) {
    let (m, d, y, _) = answers(n);
    b.open_link(&app.link(n).await).await;
    assert_eq!(
        location(&b.submit_dob(&m, &d, &y).await),
        "/summary",
        "patient {n}'s date of birth accepted"
    );
    let checkout = location(&b.pay("5.00").await);
    assert!(
        checkout.starts_with(&app.sandbox_url),
        "a $5.00 payment goes to the sandbox: {checkout}"
    );
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let receipt = location(&b.get(&back).await);
    assert!(
        receipt.starts_with("/receipt/pay_"),
        "link payment ends on its receipt: {receipt}"
    );
    b.page(&receipt).await;
}

/// Posts the email/password form at `path` (create-account or invitation page).
async fn submit_account_form(
    b: &Browser,
    path: &str,
    email: &str,
    password: &str,
    confirm: &str,
    mode: Option<&str>,
) -> Response {
    let csrf = b.csrf(path).await;
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
        ("password_confirm", confirm),
    ];
    if let Some(m) = mode {
        form.push(("mode", m));
    }
    b.post(path, &form).await
}

/// Demo patient `n` pays by link and creates an account with `email`; returns the signed-in
/// browser.
async fn patient_account(app: &TestApp, n: usize, email: &str) -> Browser {
    let b = Browser::new(app);
    pay_five_dollars_by_link(app, &b, n).await;
    assert_eq!(location(&b.get("/account/create").await), "/verify/zip");
    let (_, _, _, zip) = answers(n);
    assert_eq!(location(&b.submit_zip(&zip).await), "/account/create");
    let r = submit_account_form(&b, "/account/create", email, PASSWORD, PASSWORD, None).await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account".to_owned()),
        "account created for patient {n}"
    );
    b
}

async fn sign_in(b: &Browser, email: &str, password: &str) -> Response {
    let csrf = b.csrf("/signin").await;
    b.post(
        "/signin",
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// A fresh practice invitation for demo patient `n`: the full `/g/<token>` URL.
async fn invitation_for(app: &TestApp, n: usize) -> String {
    let (_, url) =
        patriotpay::demo::invite_text(app.db(), &app.state().crypto, &app.tenant, n, &app.url)
            .await
            .expect("invitation");
    url
}

fn token_of(url: &str) -> String {
    url.rsplit("/g/").next().expect("token").to_owned()
}

/// Opens an invitation link: the token is swapped for a session and a token-free redirect.
async fn open_invitation(b: &Browser, url: &str) {
    let r = b.get(url).await;
    assert_eq!(r.status(), SEE_OTHER, "opening an invitation redirects");
    assert_eq!(
        location(&r),
        "/guarantor/verify",
        "the token must not survive the redirect"
    );
}

async fn answer_invitation(b: &Browser, m: &str, d: &str, y: &str, zip: &str) -> Response {
    let csrf = b.csrf("/guarantor/verify").await;
    b.post(
        "/guarantor/verify",
        &[
            ("csrf", &csrf),
            ("dob_month", m),
            ("dob_day", d),
            ("dob_year", y),
            ("zip", zip),
        ],
    )
    .await
}

async fn answer_for(b: &Browser, n: usize) -> Response {
    let (m, d, y, zip) = answers(n);
    answer_invitation(b, &m, &d, &y, &zip).await
}

/// Opens and answers an invitation, then creates a guarantor account on it.
async fn accept_as_new(b: &Browser, url: &str, n: usize, email: &str) {
    open_invitation(b, url).await;
    assert_eq!(location(&answer_for(b, n).await), "/guarantor/accept");
    let r = submit_account_form(
        b,
        "/guarantor/accept",
        email,
        PASSWORD,
        PASSWORD,
        Some("create"),
    )
    .await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account".to_owned()),
        "guarantor account created on the invitation"
    );
}

/// Opens and answers an invitation with (month, day, year, zip), signs in as `email`, and
/// accepts onto that account.
async fn accept_onto_existing(b: &Browser, url: &str, a: (&str, &str, &str, &str), email: &str) {
    open_invitation(b, url).await;
    assert_eq!(
        location(&answer_invitation(b, a.0, a.1, a.2, a.3).await),
        "/guarantor/accept"
    );
    assert_eq!(
        location(&sign_in(b, email, PASSWORD).await),
        "/guarantor/accept",
        "signing in keeps the verified invitation and returns to it"
    );
    let csrf = b.csrf("/guarantor/accept").await;
    let r = b
        .post(
            "/guarantor/accept",
            &[("csrf", &csrf), ("mode", "existing")],
        )
        .await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account".to_owned()),
        "invitation accepted onto the signed-in account"
    );
}

/// A guarantor account over demo patient 4 only.
async fn guarantor_of_4(app: &TestApp, email: &str) -> Browser {
    let b = Browser::new(app);
    accept_as_new(&b, &invitation_for(app, 4).await, 4, email).await;
    b
}

/// A guarantor account over demo patients 4 and 5 (two invitations, one account).
async fn guarantor_of_4_and_5(app: &TestApp, email: &str) -> Browser {
    let b = guarantor_of_4(app, email).await;
    let (m, d, y, zip) = answers(5);
    accept_onto_existing(&b, &invitation_for(app, 5).await, (&m, &d, &y, &zip), email).await;
    b
}

/// The id of the one active guarantor grant over `patient`.
async fn active_grant(app: &TestApp, patient: &PatientId) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM user_grants WHERE role = 'guarantor' AND patient_id = $1 AND revoked_at IS NULL",
    )
    .bind(patient.as_str())
    .fetch_one(app.db().pool())
    .await
    .expect("one active guarantor grant")
}

async fn grant_revoked(app: &TestApp, grant: i64) -> bool {
    let at: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM user_grants WHERE id = $1")
        .bind(grant)
        .fetch_one(app.db().pool())
        .await
        .expect("grant");
    at.is_some()
}

/// A staff account of `role` in the demo practice, enrolled and signed in over HTTP.
async fn staff(app: &TestApp, email: &str, role: Role) -> Browser {
    let now = app.state().clock.now();
    let (user, token) = patriotpay::accounts::add_user(
        app.db(),
        &app.state().crypto,
        email,
        role,
        Some(&app.tenant),
        now,
    )
    .await
    .expect("add user");
    let e = Browser::new(app);
    assert_eq!(
        location(&e.get(&format!("/staff/enrol/{token}")).await),
        "/staff/enrol"
    );
    let csrf = e.csrf("/staff/enrol").await;
    let code = totp(app, &user).await;
    let r = e
        .post(
            "/staff/enrol",
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{email} enrolled");
    let b = Browser::new(app);
    let csrf = b.csrf("/staff/login").await;
    let r = b
        .post(
            "/staff/login",
            &[("csrf", &csrf), ("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&r), "/staff/mfa");
    // A fresh TOTP step, so the code is not the one enrolment used.
    app.state().clock.advance(30);
    let code = totp(app, &user).await;
    let csrf = b.csrf("/staff/mfa").await;
    let r = b
        .post("/staff/mfa", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(location(&r), "/staff", "{email} signed in");
    b
}

async fn totp(app: &TestApp, user: &UserId) -> String {
    patriotpay::accounts::current_totp(app.db(), &app.state().crypto, user, app.state().clock.now())
        .await
        .expect("code")
}

/// A second practice with one patient (Casey, 2016-04-01, ZIP 60601) owing $15.00.
async fn second_practice(app: &TestApp) -> (TenantId, PatientId, StatementId) {
    use patriotpay::billing::{self, NewLine, NewPatient, NewStatement};
    use patriotpay::money::Money;
    use patriotpay::phi::Phi;
    let (db, crypto) = (app.db(), &app.state().crypto);
    let phi = |s: &str| Phi::new(s.to_owned());
    let tenant = billing::create_tenant(db, "Lakeside Pediatrics", "(555) 010-9900")
        .await
        .expect("tenant");
    let patient = billing::import_patient(
        db,
        crypto,
        &tenant,
        &NewPatient {
            first_name: phi("Casey"),
            last_name: phi("Lindqvist"),
            dob: phi("2016-04-01"),
            zip: phi("60601"),
            phone: phi("+15550109999"),
            account_number: phi("LP-1"),
        },
    )
    .await
    .expect("patient");
    let statement = billing::import_statement(
        db,
        crypto,
        &tenant,
        &patient,
        &NewStatement {
            statement_date: "2026-11-03".into(),
            due_date: "2026-12-03".into(),
            lines: vec![NewLine {
                service_date: phi("2026-10-30"),
                description: phi("Ear check"),
                charge: Money::from_cents(10_000),
                insurance_paid: Money::from_cents(8_000),
                adjustment: Money::from_cents(500),
                patient_responsibility: Money::from_cents(1_500),
                confidential: false,
            }],
        },
    )
    .await
    .expect("statement");
    (tenant, patient, statement)
}

/// A 404 page with its request id taken out, for comparing two of them.
async fn not_found_body(r: Response, what: &str) -> String {
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what}");
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.text().await.expect("body").replace(&rid, "RID")
}

/// The invitation link a page shows once.
fn invite_link_in(body: &str) -> String {
    let marker = "class=\"invite-link\">";
    let start = body
        .find(marker)
        .map(|i| i + marker.len())
        .expect("the invitation link is shown");
    body[start..]
        .split('<')
        .next()
        .expect("link text")
        .to_owned()
}

fn is_refusal(r: &Response) -> bool {
    matches!(
        r.status(),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    )
}

// ---- 1. Patient accounts ------------------------------------------------------------------

async fn account_creation_needs_a_payment_both_answers_and_a_valid_form(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    // No session at all: nothing to make an account from.
    assert_eq!(location(&b.get("/account/create").await), "/expired");
    b.open_link(&app.link(1).await).await;
    assert_eq!(
        location(&b.submit_dob("03", "14", "1984").await),
        "/summary"
    );
    assert_eq!(
        location(&b.get("/account/create").await),
        "/summary",
        "no account before a payment through the link"
    );
    let checkout = location(&b.pay("5.00").await);
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let receipt_path = location(&b.get(&back).await);
    let receipt = b.page(&receipt_path).await;
    assert!(
        receipt.contains("href=\"/account/create\"") || receipt.contains("/account/create"),
        "the receipt offers an account"
    );
    // Only the date of birth was given: the ZIP comes first, then back to the form.
    assert_eq!(
        location(&b.get("/account/create").await),
        "/verify/zip",
        "an account needs both identity answers"
    );
    let r = b.submit_zip("60614").await;
    assert_eq!(
        location(&r),
        "/account/create",
        "the ZIP step returns to account creation"
    );
    let link_cookie = session_cookie(&r).expect("the ZIP step cycles the session id");
    let page = text(&b.page("/account/create").await);
    assert_eq!(h1(&page), t("account-create-title"));

    // Each bad form: back to the form with the error on the next GET, and no account made.
    patriotpay::accounts::add_user(
        app.db(),
        &app.state().crypto,
        "taken@example.org",
        Role::SupportAgent,
        Some(&app.tenant),
        app.state().clock.now(),
    )
    .await
    .expect("an account holding the email");
    let users_before = app.count("SELECT COUNT(*) FROM users").await;
    for (email, password, confirm, key) in [
        ("not-an-email", PASSWORD, PASSWORD, "account-email-invalid"),
        ("avery@example.org", "short", "short", "staff-password-weak"),
        (
            "avery@example.org",
            PASSWORD,
            "correct horse battery stapler",
            "staff-password-mismatch",
        ),
        (
            "Taken@Example.org",
            PASSWORD,
            PASSWORD,
            "account-email-taken",
        ),
    ] {
        let r = submit_account_form(&b, "/account/create", email, password, confirm, None).await;
        assert_eq!(
            (r.status(), location(&r)),
            (SEE_OTHER, "/account/create".to_owned()),
            "{key}: back to the form"
        );
        let page = text(&b.page("/account/create").await);
        assert!(
            page.contains(&t(key)),
            "{key}: the error is shown on the next page"
        );
        assert!(
            page.contains("aria-invalid=\"true\""),
            "{key}: the error is tied to its field"
        );
        assert!(
            !page.contains(PASSWORD),
            "{key}: the password is never echoed"
        );
        assert_eq!(
            app.count("SELECT COUNT(*) FROM users").await,
            users_before,
            "{key}: no account row"
        );
        assert_eq!(
            app.count("SELECT COUNT(*) FROM user_grants WHERE role = 'patient'")
                .await,
            0,
            "{key}: no grant"
        );
    }

    let r = submit_account_form(
        &b,
        "/account/create",
        " Avery@Example.org ",
        PASSWORD,
        PASSWORD,
        None,
    )
    .await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account".to_owned())
    );
    let member_cookie = session_cookie(&r).expect("a new session id on account creation");
    assert_ne!(link_cookie, member_cookie, "session id cycles (fixation)");
    let home = text(&b.page("/account").await);
    assert!(home.contains(&t("account-created")), "creation confirmed");
    assert!(
        home.contains("avery@example.org"),
        "email normalised and shown"
    );
    assert!(
        home.contains("$107.00"),
        "patient 1's remaining balance is on the account page"
    );
    // The pre-account session id is dead: it is neither signed in nor a link session.
    assert_eq!(
        location(&get_with_cookie(&app, "/account", &link_cookie).await),
        "/signin",
        "the old session cookie is not signed in"
    );
    assert_eq!(
        location(&get_with_cookie(&app, "/summary", &link_cookie).await),
        "/expired",
        "the old session cookie no longer holds the link"
    );
    // One member account with one patient grant over patient 1.
    let patient1 = patient_of(&app, 1).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        1
    );
    let granted: Vec<(String, String)> =
        sqlx::query_as("SELECT role, patient_id FROM user_grants WHERE user_id = $1")
            .bind(app.user_id_of("avery@example.org").await)
            .fetch_all(app.db().pool())
            .await
            .expect("grants");
    assert_eq!(
        granted,
        vec![("patient".to_owned(), patient1.to_string())],
        "the account may act for patient 1 only"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'account.create' AND outcome = 'success'"
        )
        .await,
        1,
        "account creation is audited"
    );
    app.finish().await;
}

async fn sign_out_then_sign_in_with_look_alike_failures_and_throttling(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = patient_account(&app, 1, "avery@example.org").await;
    let csrf = b.csrf("/account").await;
    assert_eq!(
        location(&b.post("/signout", &[("csrf", &csrf)]).await),
        "/signed-out"
    );
    assert_eq!(location(&b.get("/account").await), "/signin", "signed out");

    // Signing in cycles the session id.
    let r = b.get("/signin").await;
    let anonymous = session_cookie(&r).expect("the sign-in page starts a session");
    let csrf = csrf_in(&r.text().await.expect("body"));
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("email", " AVERY@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account".to_owned()),
        "signed in"
    );
    let signed_in = session_cookie(&r).expect("a session id on sign-in");
    assert_ne!(signed_in, anonymous, "fixation: new id");
    assert_eq!(
        location(&get_with_cookie(&app, "/account", &anonymous).await),
        "/signin",
        "the pre-sign-in id is not signed in"
    );
    assert_eq!(b.get("/account").await.status(), StatusCode::OK);
    let csrf = b.csrf("/account").await;
    let _ = b.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(
        location(&get_with_cookie(&app, "/account", &signed_in).await),
        "/signin",
        "sign-out removed the server-side session"
    );

    // Unknown email and wrong password: the same status, redirect and page (apart from the
    // token and the email the visitor typed, which is shown back to them).
    let r1 = sign_in(&b, "nobody@example.org", PASSWORD).await;
    let p1 = text(&b.page("/signin").await);
    let r2 = sign_in(&b, "avery@example.org", "wrong password!").await;
    let p2 = text(&b.page("/signin").await);
    assert_eq!(
        (r1.status(), location(&r1)),
        (r2.status(), location(&r2)),
        "unknown account and wrong password answer alike"
    );
    assert_eq!(location(&r1), "/signin");
    assert!(p1.contains(&t("signin-failed")), "failure explained");
    let norm = |p: &str, email: &str| p.replace(&csrf_in(p), "TOKEN").replace(email, "EMAIL");
    assert_eq!(
        norm(&p1, "nobody@example.org"),
        norm(&p2, "avery@example.org"),
        "the pages after an unknown email and a wrong password must be identical"
    );
    // Four more wrong passwords (five in all), then the sixth attempt is refused.
    for i in 2..=5 {
        let r = sign_in(&b, "avery@example.org", "wrong password!").await;
        assert_eq!(location(&r), "/signin", "wrong attempt {i}");
    }
    let r = sign_in(&b, "avery@example.org", "wrong password!").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "sixth failure in the window"
    );
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After on 429");
    assert!(
        retry > 0 && retry <= 15 * 60,
        "Retry-After {retry} within the window"
    );
    let r = sign_in(&b, "avery@example.org", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(location(&b.get("/account").await), "/signin");
    // After the window, the right password works again.
    app.state().clock.advance(15 * 60 + 1);
    assert_eq!(
        location(&sign_in(&b, "avery@example.org", PASSWORD).await),
        "/account"
    );
    app.finish().await;
}

async fn member_sessions_idle_out_after_thirty_minutes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = patient_account(&app, 1, "avery@example.org").await;
    let clock = app.state().clock.clone();
    clock.advance(20 * 60);
    assert_eq!(
        b.get("/account").await.status(),
        StatusCode::OK,
        "20 minutes idle is fine"
    );
    clock.advance(31 * 60);
    assert_eq!(
        location(&b.get("/account").await),
        "/signin",
        "31 minutes idle ends a member session"
    );
    assert_eq!(
        location(&b.get("/account").await),
        "/signin",
        "and it stays ended"
    );
    assert_eq!(
        location(&sign_in(&b, "avery@example.org", PASSWORD).await),
        "/account"
    );
    app.finish().await;
}

// ---- 2. Guarantor invitations -------------------------------------------------------------

async fn five_wrong_answers_lock_an_invitation(backend: Backend) {
    let app = TestApp::start(backend).await;
    let url = invitation_for(&app, 4).await;
    let token = token_of(&url);
    let b = Browser::new(&app);
    open_invitation(&b, &url).await;
    let page = b.page("/guarantor/verify").await;
    assert_eq!(h1(&page), t("invite-verify-title"));
    assert!(
        page.contains("name=\"dob_month\"") && page.contains("name=\"zip\""),
        "both identity questions asked together"
    );
    let csrf = csrf_in(&page);
    let mut seen = vec![];
    for attempt in 1..=4 {
        let r = answer_invitation(&b, "01", "01", "2000", "60622").await;
        seen.push(location(&r));
        assert_eq!(location(&r), "/guarantor/verify", "attempt {attempt}");
        let page = text(&b.page("/guarantor/verify").await);
        assert!(
            page.contains(&t("invite-verify-failed")),
            "attempt {attempt} says the details were not confirmed"
        );
    }
    // The right date of birth with a wrong ZIP is a wrong answer too: the fifth.
    let r = answer_invitation(&b, "02", "09", "2015", "60614").await;
    seen.push(location(&r));
    let page = text(&b.page("/guarantor/verify").await);
    assert_eq!(h1(&page), t("invite-locked-title"), "locked after five");
    assert!(
        page.contains("(555) 010-4400"),
        "the locked page says whom to call"
    );
    // Even the right answers now fail, from this browser or another.
    let r = b
        .post(
            "/guarantor/verify",
            &[
                ("csrf", &csrf),
                ("dob_month", "02"),
                ("dob_day", "09"),
                ("dob_year", "2015"),
                ("zip", "60622"),
            ],
        )
        .await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/guarantor/verify");
    assert_eq!(
        h1(&b.page("/guarantor/verify").await),
        t("invite-locked-title")
    );
    assert_eq!(
        location(&b.get("/guarantor/accept").await),
        "/guarantor/verify",
        "no way to the acceptance page"
    );
    let other = Browser::new(&app);
    open_invitation(&other, &url).await;
    assert_eq!(
        h1(&other.page("/guarantor/verify").await),
        t("invite-locked-title")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations WHERE locked_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE role = 'guarantor'")
            .await,
        0
    );
    assert!(
        seen.iter().all(|l| !l.contains(&token)),
        "the token appears in no later URL: {seen:?}"
    );
    // A fresh invitation with the right answers goes through.
    let fresh = Browser::new(&app);
    open_invitation(&fresh, &invitation_for(&app, 4).await).await;
    assert_eq!(location(&answer_for(&fresh, 4).await), "/guarantor/accept");
    let accept = text(&fresh.page("/guarantor/accept").await);
    assert_eq!(h1(&accept), t("invite-accept-title"));
    assert!(accept.contains("Sam"), "names the dependant");
    app.finish().await;
}

async fn invitation_is_single_use_and_a_second_one_joins_the_same_account(backend: Backend) {
    let app = TestApp::start(backend).await;
    let url4 = invitation_for(&app, 4).await;
    let url5 = invitation_for(&app, 5).await;
    let (token4, token5) = (token_of(&url4), token_of(&url5));
    let mut seen = vec![];
    let b = Browser::new(&app);
    open_invitation(&b, &url4).await;
    let r = answer_for(&b, 4).await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/guarantor/accept");
    let page = b.page("/guarantor/accept").await;
    assert!(
        page.contains("name=\"mode\" value=\"create\"") && page.contains("href=\"/signin\""),
        "a new visitor may create an account or sign in"
    );
    // A refused form keeps the invitation.
    let r = submit_account_form(
        &b,
        "/guarantor/accept",
        "guardian@example.org",
        PASSWORD,
        "something else entirely",
        Some("create"),
    )
    .await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/guarantor/accept");
    assert!(text(&b.page("/guarantor/accept").await).contains(&t("staff-password-mismatch")));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        0
    );
    let r = submit_account_form(
        &b,
        "/guarantor/accept",
        "guardian@example.org",
        PASSWORD,
        PASSWORD,
        Some("create"),
    )
    .await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/account");
    let home = text(&b.page("/account").await);
    assert!(
        home.contains(&t("invite-accepted")) || home.contains(&t("account-created")),
        "the outcome is confirmed"
    );
    assert!(home.contains(&ta("account-dependant-statements", &[("name", "Sam")])));
    assert!(!home.contains("Morgan"), "only the accepted dependant");

    // Single use: the same link, answered correctly, leads nowhere.
    let c = Browser::new(&app);
    open_invitation(&c, &url4).await;
    let r = answer_for(&c, 4).await;
    seen.push(location(&r));
    assert_ne!(
        location(&r),
        "/guarantor/accept",
        "a used invitation is not accepted twice"
    );
    assert_eq!(
        location(&c.get("/guarantor/accept").await),
        "/guarantor/verify"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE role = 'guarantor'")
            .await,
        1
    );

    // A second invitation onto the same account: open, answer, sign in, accept.
    open_invitation(&b, &url5).await;
    let r = answer_for(&b, 5).await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/guarantor/accept");
    let r = sign_in(&b, "guardian@example.org", PASSWORD).await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/guarantor/accept");
    let page = text(&b.page("/guarantor/accept").await);
    assert!(
        page.contains(&t("invite-accept-existing")) && page.contains("guardian@example.org"),
        "signed in: one button adds the dependant to this account"
    );
    let csrf = csrf_in(&page);
    let r = b
        .post(
            "/guarantor/accept",
            &[("csrf", &csrf), ("mode", "existing")],
        )
        .await;
    seen.push(location(&r));
    assert_eq!(location(&r), "/account");
    let home = text(&b.page("/account").await);
    assert!(home.contains(&t("invite-accepted")), "acceptance confirmed");
    assert!(
        home.contains(&ta("account-dependant-statements", &[("name", "Sam")]))
            && home.contains(&ta("account-dependant-statements", &[("name", "Morgan")])),
        "both dependants on one account"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        1,
        "one account"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM user_grants
             WHERE user_id = '{}' AND role = 'guarantor' AND revoked_at IS NULL",
            app.user_id_of("guardian@example.org").await
        ))
        .await,
        2,
        "two guarantor grants on it"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations WHERE used_at IS NOT NULL")
            .await,
        2
    );
    assert!(
        seen.iter()
            .all(|l| !l.contains(&token4) && !l.contains(&token5)),
        "no token in any later URL: {seen:?}"
    );
    app.finish().await;
}

/// Two visitors answer the same invitation correctly, then both submit new accounts at once.
/// Returns each one's browser with where its POST redirected, the winner's first.
async fn race_two_acceptances(app: &TestApp) -> [(Browser, String); 2] {
    let url = invitation_for(app, 4).await;
    let (a, b) = (Browser::new(app), Browser::new(app));
    for v in [&a, &b] {
        open_invitation(v, &url).await;
        assert_eq!(location(&answer_for(v, 4).await), "/guarantor/accept");
    }
    let post = |v: &Browser, csrf: String, email: &'static str| {
        let (client, url) = (v.client.clone(), format!("{}/guarantor/accept", app.url));
        tokio::spawn(async move {
            client
                .post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("mode", "create"),
                    ("email", email),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ])
                .send()
                .await
                .expect("post")
        })
    };
    let ra = post(&a, a.csrf("/guarantor/accept").await, "first@example.org");
    let rb = post(&b, b.csrf("/guarantor/accept").await, "second@example.org");
    let (la, lb) = (
        location(&ra.await.expect("join")),
        location(&rb.await.expect("join")),
    );
    if la == "/account" {
        [(a, la), (b, lb)]
    } else {
        [(b, lb), (a, la)]
    }
}

async fn racing_acceptances_of_one_invitation_give_one_grant(backend: Backend) {
    let app = TestApp::start(backend).await;
    let [(_, won), (_, lost)] = race_two_acceptances(&app).await;
    assert_eq!(won, "/account", "one visitor accepts");
    assert_ne!(lost, "/account", "the other does not");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE role = 'guarantor'")
            .await,
        1,
        "one invitation, one grant"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        1,
        "the loser's account is not left behind"
    );
    app.finish().await;
}

/// The visitor who loses the race is told the invitation was used, not that their email
/// address "can't be used" (it never was).
async fn racing_loser_is_told_the_invitation_is_gone(backend: Backend) {
    let app = TestApp::start(backend).await;
    let [_, (loser, lost)] = race_two_acceptances(&app).await;
    // Follow the loser's redirects to the page that shows the outcome.
    let mut at = lost;
    let mut page = String::new();
    for _ in 0..4 {
        let r = loser.get(&at).await;
        if r.status() == SEE_OTHER {
            at = location(&r);
            continue;
        }
        page = text(&r.text().await.expect("body"));
        break;
    }
    assert!(
        !page.contains(&t("account-email-taken")),
        "second@example.org was never used, yet the loser is told it can't be"
    );
    assert!(
        page.contains(&t("invite-gone")),
        "the loser learns the invitation was used: {page}"
    );
    app.finish().await;
}

async fn invitation_expires_after_fourteen_days(backend: Backend) {
    let app = TestApp::start(backend).await;
    let url = invitation_for(&app, 4).await;
    app.state()
        .clock
        .advance(patriotpay::guarantors::INVITATION_TTL_SECS + 60);
    let b = Browser::new(&app);
    open_invitation(&b, &url).await;
    assert_ne!(
        location(&answer_for(&b, 4).await),
        "/guarantor/accept",
        "an expired invitation cannot be accepted"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE role = 'guarantor'")
            .await,
        0
    );
    app.finish().await;
}

// ---- 3. Household page --------------------------------------------------------------------

async fn guarantor_sees_amounts_but_not_clinical_detail(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s1, s4, s5) = (
        app.statement_of(1).await,
        app.statement_of(4).await,
        app.statement_of(5).await,
    );
    let home = text(&g.page("/account").await);
    for name in ["Sam", "Morgan"] {
        assert!(
            home.contains(&ta("account-dependant-statements", &[("name", name)])),
            "{name} listed"
        );
    }
    for s in [&s4, &s5] {
        assert!(
            home.contains(&format!("href=\"/account/statements/{s}\"")),
            "{s} linked"
        );
    }
    assert!(
        home.contains(&ta("account-statement-balance", &[("balance", "$35.00")])),
        "each balance shown"
    );
    assert!(home.contains("$70.00"), "total of both");
    assert!(
        !home.contains("Okonkwo") && !home.contains("Avery"),
        "first names of the household only"
    );

    // Patient 5 is an adult: amounts, no descriptions.
    let st5 = text(&g.page(&format!("/account/statements/{s5}")).await);
    for amount in ["$210.00", "$160.00", "$15.00", "$35.00"] {
        assert!(
            st5.contains(amount),
            "adult dependant: amount {amount} shown"
        );
    }
    assert!(
        !st5.contains("Urgent care visit"),
        "adult dependant: description hidden"
    );
    assert!(st5.contains(&t("account-hidden-detail")) && st5.contains(&t("account-hidden-note")));
    // Patient 4 is a minor: descriptions shown except the confidential line.
    let st4 = text(&g.page(&format!("/account/statements/{s4}")).await);
    assert!(
        st4.contains("Well-child visit"),
        "minor: ordinary line shown"
    );
    assert!(
        !st4.contains("Behavioral health screening"),
        "minor: confidential line hidden"
    );
    assert!(
        st4.contains("$40.00") && st4.contains(&t("account-hidden-detail")),
        "the confidential line keeps its amounts"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'statement.amounts.view'")
            .await,
        2,
        "both views audited as amounts-only"
    );

    // Outside the household: the same 404 as an id that does not exist.
    let outside = not_found_body(
        g.get(&format!("/account/statements/{s1}")).await,
        "patient 1's statement",
    )
    .await;
    let made_up = not_found_body(
        g.get(&format!("/account/statements/{}", StatementId::generate()))
            .await,
        "a made-up statement id",
    )
    .await;
    let _ = not_found_body(g.get("/account/statements/not-an-id").await, "a bad id").await;
    assert_eq!(outside, made_up, "someone else's statement looks like none");
    assert!(!outside.contains("Avery") && !outside.contains("$112.00"));
    app.finish().await;
}

// ---- 4. One payment, several statements ----------------------------------------------------

/// The patient's own card (brand, last four) is theirs: a guarantor sees the payment's date and
/// amount only, but their own card on the payments they made.
async fn guarantor_sees_the_patients_payments_without_their_card(backend: Backend) {
    let app = TestApp::start(backend).await;
    let patient = Browser::new(&app);
    pay_five_dollars_by_link(&app, &patient, 5).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let s5 = app.statement_of(5).await;
    let page = text(&g.page(&format!("/account/statements/{s5}")).await);
    assert!(page.contains("$5.00"), "the patient's payment is listed");
    assert!(
        !page.contains("4242"),
        "the patient's card is not shown to the guarantor: {page}"
    );
    let csrf = g.csrf("/account").await;
    let r = pay_statements(&g, &csrf, &[(&s5, "1.00")]).await;
    let back = location(&g.card(&location(&r), "5555 5555 5555 4444").await);
    let _ = g.get(&back).await;
    let page = text(&g.page(&format!("/account/statements/{s5}")).await);
    assert!(
        page.contains("ending 4444"),
        "the guarantor's own card is shown: {page}"
    );
    assert!(!page.contains("4242"));
    app.finish().await;
}

async fn one_payment_settles_two_statements_exactly_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    // A declined card first: back to the account with the reason, nothing recorded.
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let declined = location(&g.card(&location(&r), "4000 0000 0000 0002").await);
    assert!(
        declined.starts_with(&format!("{}/account/pay/cancelled/chk_", app.url)),
        "a declined card returns to the account's cancel URL: {declined}"
    );
    assert_eq!(location(&g.get(&declined).await), "/account");
    assert!(
        text(&g.page("/account").await).contains(&t("account-pay-declined")),
        "the decline is explained"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(balance(&app, &s4).await, 3500);
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    assert_eq!(r.status(), SEE_OTHER);
    let checkout = location(&r);
    assert!(
        checkout.starts_with(&format!("{}/checkout/cs_test_", app.sandbox_url)),
        "to the processor's page: {checkout}"
    );
    let card_page = g
        .client
        .get(&checkout)
        .send()
        .await
        .expect("card page")
        .text()
        .await
        .expect("body");
    assert!(card_page.contains("$70.00"), "the checkout is for the sum");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM checkouts WHERE amount_cents = 7000 AND user_id IS NOT NULL"
        )
        .await,
        2,
        "the declined checkout and this one"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkout_items WHERE live = 1")
            .await,
        2,
        "only the new checkout holds the two statements"
    );
    let r = g.card(&checkout, "4242 4242 4242 4242").await;
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/account/pay/return/chk_", app.url))
            && back.contains("session_id=cs_test_"),
        "back to the account return URL: {back}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments").await,
        1,
        "the webhook recorded the payment"
    );
    let receipt_path = location(&g.get(&back).await);
    assert!(
        receipt_path.starts_with("/account/receipt/pay_"),
        "{receipt_path}"
    );
    let receipt = text(&g.page(&receipt_path).await);
    assert_eq!(h1(&receipt), t("receipt-title"));
    for s in ["$70.00", "Sam", "Morgan", "4242", "$35.00", "$0.00"] {
        assert!(receipt.contains(s), "receipt shows {s}");
    }

    let check_ledger = |label: &'static str| {
        let app = &app;
        let (s4, s5) = (s4.clone(), s5.clone());
        async move {
            assert_eq!(
                app.count("SELECT COUNT(*) FROM payments").await,
                1,
                "{label}: one payment"
            );
            assert_eq!(
                app.count("SELECT COUNT(*) FROM payment_allocations").await,
                2,
                "{label}: two allocations"
            );
            assert_eq!(
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payment_allocations")
                    .await,
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payments")
                    .await,
                "{label}: allocations sum to the payment"
            );
            assert_eq!(
                app.count("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM payments")
                    .await,
                7000
            );
            assert_eq!(
                app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
                    .await,
                2,
                "{label}: one ledger entry per statement"
            );
            assert_eq!(balance(app, &s4).await, 0, "{label}: Sam's balance");
            assert_eq!(balance(app, &s5).await, 0, "{label}: Morgan's balance");
        }
    };
    check_ledger("after payment").await;

    // Replays: the same event again, and another delivery about the same checkout.
    let cs = checkout.rsplit('/').next().expect("cs id").to_owned();
    let event_id: String = sqlx::query_scalar(
        "SELECT event_id FROM processor_events WHERE event_type = 'checkout.session.completed'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("event");
    let event = |id: &str, ty: &str| {
        serde_json::json!({"id": id, "object": "event", "type": ty,
            "data": {"object": {"id": cs, "object": "checkout.session"}}})
        .to_string()
    };
    let r = common::post_webhook(&app, &event(&event_id, "checkout.session.completed")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = common::post_webhook(
        &app,
        &event(
            "evt_household_redelivery",
            "checkout.session.async_payment_succeeded",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    check_ledger("after replays").await;
    // Returning to the success URL again changes nothing either.
    assert_eq!(location(&g.get(&back).await), receipt_path);
    check_ledger("after a second return").await;
    let home = text(&g.page("/account").await);
    assert!(home.contains(&t("account-nothing-due")), "nothing left due");
    app.finish().await;
}

/// A signed payment event that does not match the checkout (here the split was altered behind
/// the portal's back) books nothing, and raises one alert however often the processor retries.
async fn a_payment_that_cannot_be_booked_raises_one_alert(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);
    let csrf = g.csrf("/account").await;
    let r = pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "35.00")]).await;
    let checkout = location(&r);
    assert!(checkout.starts_with(&format!("{}/checkout/", app.sandbox_url)));
    sqlx::query(
        "UPDATE checkout_items SET amount_cents = 3400 WHERE statement_id = $1 AND live = 1",
    )
    .bind(s4.as_str())
    .execute(app.db().pool())
    .await
    .expect("alter the split");
    g.card(&checkout, "4242 4242 4242 4242").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(
        (balance(&app, &s4).await, balance(&app, &s5).await),
        (3500, 3500)
    );
    let alerts: Vec<(String, String)> = sqlx::query_as("SELECT kind, detail FROM alerts")
        .fetch_all(app.db().pool())
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "one alert for the event: {alerts:?}");
    let (kind, detail) = &alerts[0];
    assert_eq!(kind, "payment-not-recorded");
    assert!(
        detail.starts_with("processor event evt_")
            && detail.ends_with("amount received does not match the checkout's statements"),
        "{detail}"
    );
    app.finish().await;
}

async fn refused_household_payments_start_no_checkout(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s1, s4, s5) = (
        app.statement_of(1).await,
        app.statement_of(4).await,
        app.statement_of(5).await,
    );
    // A second practice's patient, whose guarantor this account also becomes.
    let (other, casey, sx) = second_practice(&app).await;
    let (_, token) = patriotpay::guarantors::invite(
        app.db().pool(),
        &other,
        &casey,
        "test:lakeside",
        app.state().clock.now(),
    )
    .await
    .expect("invite");
    accept_onto_existing(
        &g,
        &format!("{}/g/{token}", app.url),
        ("04", "01", "2016", "60601"),
        "guardian@example.org",
    )
    .await;
    let home = text(&g.page("/account").await);
    assert!(
        home.contains(&ta("account-dependant-statements", &[("name", "Casey")]))
            && home.contains("Lakeside Pediatrics"),
        "the second practice's dependant is on the account"
    );

    let csrf = g.csrf("/account").await;
    let f = |k: &str, s: &StatementId| format!("{k}_{s}");
    let pay = |fields: Vec<(String, &'static str)>| {
        let g = &g;
        let csrf = csrf.clone();
        async move {
            let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
            form.extend(fields.iter().map(|(k, v)| (k.as_str(), *v)));
            g.post("/account/pay", &form).await
        }
    };

    // Nothing selected (an amount alone selects nothing).
    for fields in [vec![], vec![(f("amount", &s4), "35.00")]] {
        let r = pay(fields).await;
        assert_eq!(location(&r), "/account", "nothing selected");
        assert!(text(&g.page("/account").await).contains(&t("account-pay-none")));
    }
    // More than one statement's balance: that statement's error, what was typed kept.
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.01"),
        (f("pay", &s5), "1"),
        (f("amount", &s5), "35.00"),
    ])
    .await;
    assert_eq!(location(&r), "/account");
    let page = text(&g.page("/account").await);
    assert!(
        page.contains(&ta("pay-err-over", &[("balance", "$35.00")])),
        "over-balance error shown"
    );
    assert!(
        page.contains(&format!("id=\"amount-{s4}-error\"")),
        "the error belongs to Sam's statement"
    );
    assert!(
        !page.contains(&format!("id=\"amount-{s5}-error\"")),
        "Morgan's amount was fine"
    );
    assert!(page.contains("value=\"35.01\""), "typed amount kept");
    // A statement outside the household: not found, alone or mixed with good ones.
    let r = pay(vec![(f("pay", &s1), "1"), (f("amount", &s1), "5.00")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "patient 1's statement");
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.00"),
        (f("pay", &s1), "1"),
        (f("amount", &s1), "5.00"),
    ])
    .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "patient 1's statement among the guarantor's own"
    );
    // Two practices in one payment.
    let r = pay(vec![
        (f("pay", &s4), "1"),
        (f("amount", &s4), "35.00"),
        (f("pay", &sx), "1"),
        (f("amount", &sx), "15.00"),
    ])
    .await;
    assert_eq!(location(&r), "/account");
    assert!(
        text(&g.page("/account").await).contains(&t("account-pay-one-practice")),
        "one practice per payment"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts").await,
        0,
        "no refused payment started a checkout"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM checkout_items").await, 0);
    // Each practice on its own is fine.
    let r = pay(vec![(f("pay", &sx), "1"), (f("amount", &sx), "15.00")]).await;
    assert!(
        location(&r).starts_with(&app.sandbox_url),
        "the other practice's statement alone goes to checkout"
    );
    app.finish().await;
}

// ---- 5. Revocation -------------------------------------------------------------------------

async fn patient_invites_then_revokes_a_guarantor(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = patient_account(&app, 1, "avery@example.org").await;
    let patient1 = patient_of(&app, 1).await;
    let s1 = app.statement_of(1).await;
    let home = p.page("/account").await;
    assert!(
        home.contains("action=\"/account/guarantors/invite\"")
            && home.contains(&format!("<option value=\"{patient1}\">Avery</option>")),
        "an adult patient is offered the invite form"
    );
    let own = p.page(&format!("/account/statements/{s1}")).await;
    assert!(
        own.contains("Office visit, established patient") && !own.contains("hidden-detail"),
        "a patient sees their own statement in full"
    );
    let r = p
        .post(
            "/account/guarantors/invite",
            &[("csrf", &csrf_in(&home)), ("patient", patient1.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let link = invite_link_in(&r.text().await.expect("body"));
    assert!(
        link.starts_with(&format!("{}/g/", app.url)),
        "a /g/ link: {link}"
    );
    let token = token_of(&link);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE data LIKE '%{token}%'"
        ))
        .await,
        0,
        "the token is not kept in the session"
    );
    let home = text(&p.page("/account").await);
    assert!(!home.contains("/g/"), "the link is shown once");
    assert!(
        home.contains(&t("account-invitations-title")),
        "the pending invitation is listed"
    );

    // A second invitation, cancelled by the patient: its link no longer leads anywhere.
    let r = p
        .post(
            "/account/guarantors/invite",
            &[("csrf", &csrf_in(&home)), ("patient", patient1.as_str())],
        )
        .await;
    let cancelled = invite_link_in(&r.text().await.expect("body"));
    let cancelled_id: String =
        sqlx::query_scalar("SELECT id FROM guarantor_invitations WHERE token_hash = $1")
            .bind(patriotpay::crypto::token_hash(&token_of(&cancelled)))
            .fetch_one(app.db().pool())
            .await
            .expect("the second invitation's row");
    let home = p.page("/account").await;
    assert!(
        home.contains(&format!("name=\"invitation\" value=\"{cancelled_id}\"")),
        "pending invitations can be cancelled"
    );
    let r = p
        .post(
            "/account/invitations/revoke",
            &[("csrf", &csrf_in(&home)), ("invitation", &cancelled_id)],
        )
        .await;
    assert_eq!(location(&r), "/account");
    assert!(text(&p.page("/account").await).contains(&t("account-invitation-revoked")));
    let stranger = Browser::new(&app);
    open_invitation(&stranger, &cancelled).await;
    assert_ne!(
        location(&answer_for(&stranger, 1).await),
        "/guarantor/accept",
        "a cancelled invitation cannot be accepted"
    );

    let g = Browser::new(&app);
    accept_as_new(&g, &link, 1, "spouse@example.org").await;
    assert!(text(&g.page("/account").await)
        .contains(&ta("account-dependant-statements", &[("name", "Avery")])));
    let st = g.page(&format!("/account/statements/{s1}")).await;
    assert!(
        st.contains("$112.00") || st.contains("$107.00"),
        "the guarantor sees the balance"
    );
    assert!(
        !st.contains("Office visit"),
        "an adult's descriptions are hidden from the guarantor"
    );

    let home = p.page("/account").await;
    assert!(
        home.contains("spouse@example.org"),
        "the patient sees who can pay"
    );
    let grant = active_grant(&app, &patient1).await;
    assert!(
        home.contains(&format!("name=\"grant\" value=\"{grant}\"")),
        "the revoke form names the grant"
    );
    let r = p
        .post(
            "/account/guarantors/revoke",
            &[("csrf", &csrf_in(&home)), ("grant", &grant.to_string())],
        )
        .await;
    assert_eq!(location(&r), "/account");
    let home = text(&p.page("/account").await);
    assert!(home.contains(&t("account-guarantor-revoked")));
    assert!(!home.contains("spouse@example.org"), "no longer listed");
    assert!(grant_revoked(&app, grant).await);
    // The guarantor's very next request is refused.
    assert_eq!(
        g.get(&format!("/account/statements/{s1}")).await.status(),
        StatusCode::NOT_FOUND,
        "revoked at once"
    );
    assert!(
        !text(&g.page("/account").await).contains("Avery"),
        "gone from the guarantor's account"
    );
    app.finish().await;
}

/// An account of one's own is for adult patients: for a minor, whoever holds the phone is a
/// parent, who is offered no account (a guarantor invitation is the way in). And should a
/// minor's record ever sit on an account, it still cannot invite guarantors.
async fn minors_get_no_account_and_cannot_invite(backend: Backend) {
    let app = TestApp::start(backend).await;
    let minor = Browser::new(&app);
    pay_five_dollars_by_link(&app, &minor, 3).await;
    let (_, _, _, zip) = answers(3);
    let _ = minor.submit_zip(&zip).await;
    assert_eq!(
        minor.get("/account/create").await.status(),
        StatusCode::NOT_FOUND,
        "no account form for a minor's link"
    );
    let csrf = minor.csrf("/statement").await;
    let r = minor
        .post(
            "/account/create",
            &[
                ("csrf", &csrf),
                ("email", "parent@example.org"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a forged sign-up too");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        0
    );

    // An adult's account that (somehow) also holds the minor's record: no invite for the minor.
    let p = patient_account(&app, 1, "avery@example.org").await;
    let riley = patient_of(&app, 3).await;
    sqlx::query(
        "INSERT INTO user_grants (user_id, role, tenant_id, patient_id, granted_by, created_at)
         SELECT id, 'patient', $1, $2, 'test', 0 FROM users WHERE email_index = $3",
    )
    .bind(app.tenant.as_str())
    .bind(riley.as_str())
    .bind(
        patriotpay::accounts::email_index(&app.state().crypto, "avery@example.org")
            .await
            .expect("index"),
    )
    .execute(app.db().pool())
    .await
    .expect("grant");
    let home = p.page("/account").await;
    assert!(
        !home.contains(&format!("value=\"{riley}\"")),
        "the minor is not offered in the invite form"
    );
    let r = p
        .post(
            "/account/guarantors/invite",
            &[("csrf", &csrf_in(&home)), ("patient", riley.as_str())],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a forged invite for a minor's record"
    );
    assert!(!r.text().await.expect("body").contains("/g/"));
    // Someone else's record is not found at all.
    let r = p
        .post(
            "/account/guarantors/invite",
            &[
                ("csrf", &csrf_in(&home)),
                ("patient", patient_of(&app, 2).await.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'guarantor.invite' AND outcome = 'denied'"
        )
        .await,
        1,
        "the refusal is audited"
    );
    app.finish().await;
}

/// One patient, one account of their own: a second sign-up for the same patient is refused and
/// leaves no account behind; the practice admin sees the account and can remove its access.
async fn one_account_per_patient_and_the_practice_can_remove_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first = patient_account(&app, 1, "avery@example.org").await;
    let b = Browser::new(&app);
    pay_five_dollars_by_link(&app, &b, 1).await;
    let (_, _, _, zip) = answers(1);
    let _ = b.get("/account/create").await;
    let _ = b.submit_zip(&zip).await;
    assert_eq!(
        location(&b.get("/account/create").await),
        "/account/reset-password",
        "with an account already, the way in is a new password for it"
    );
    // A sign-up posted anyway is refused and says why.
    let csrf = csrf_in(&b.page("/statement").await);
    let r = b
        .post(
            "/account/create",
            &[
                ("csrf", &csrf),
                ("email", "second@example.org"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&r), "/account/create");
    assert!(
        b.page("/account/reset-password")
            .await
            .contains("already has an account"),
        "the second sign-up is told why"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE kind = 'member'")
            .await,
        1,
        "no second account left behind"
    );
    let admin = staff(&app, "admin@example.org", Role::PracticeAdmin).await;
    let csrf = admin.csrf("/staff").await;
    let r = admin
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", ""),
                ("dob", ""),
                ("account", "RFM-100231"),
            ],
        )
        .await;
    let page = r.text().await.expect("body");
    assert!(
        page.contains("avery@example.org"),
        "the admin sees the patient's account"
    );
    let grant: i64 = sqlx::query_scalar(
        "SELECT id FROM user_grants WHERE role = 'patient' AND revoked_at IS NULL",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("grant");
    let r = admin
        .post(
            "/staff/guarantors/revoke",
            &[("csrf", &csrf_in(&page)), ("grant", &grant.to_string())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = first.get("/account").await;
    assert!(
        !text(&r.text().await.expect("body")).contains("Your statements"),
        "the account no longer reaches the patient's record"
    );
    app.finish().await;
}

/// A patient who forgot their password proves who they are on a new pay link (both answers)
/// and sets a new one: old sessions end, the old password stops working, the new one works.
/// A visitor with only the date of birth is sent for the ZIP first.
async fn forgotten_password_is_reset_by_proving_identity_on_a_link(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old_session = patient_account(&app, 1, "avery@example.org").await;
    assert_eq!(old_session.get("/account").await.status(), StatusCode::OK);

    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let _ = b.submit_dob("03", "14", "1984").await;
    assert_eq!(
        location(&b.get("/account/reset-password").await),
        "/verify/zip",
        "both answers first"
    );
    assert_eq!(
        location(&b.submit_zip("60614").await),
        "/account/reset-password"
    );
    let page = b.page("/account/reset-password").await;
    assert!(
        page.contains("a•••@example.org"),
        "the account, masked: {page}"
    );
    assert!(!page.contains("avery@example.org"));
    assert!(
        b.page("/statement")
            .await
            .contains("/account/reset-password"),
        "the statement offers it"
    );
    // Too short, then mismatched: refused, nothing changed.
    for (pw, confirm) in [("short", "short"), (PASSWORD, "something else entirely")] {
        let csrf = csrf_in(&b.page("/account/reset-password").await);
        let r = b
            .post(
                "/account/reset-password",
                &[
                    ("csrf", &csrf),
                    ("password", pw),
                    ("password_confirm", confirm),
                ],
            )
            .await;
        assert_eq!(location(&r), "/account/reset-password");
    }
    let new_password = "a brand new passphrase";
    let csrf = csrf_in(&b.page("/account/reset-password").await);
    let r = b
        .post(
            "/account/reset-password",
            &[
                ("csrf", &csrf),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(location(&r), "/account");
    assert_eq!(
        b.get("/account").await.status(),
        StatusCode::OK,
        "signed in here"
    );
    assert_eq!(
        location(&old_session.get("/account").await),
        "/signin",
        "the session from before the reset ended"
    );
    let c = Browser::new(&app);
    assert_eq!(
        location(&sign_in(&c, "avery@example.org", PASSWORD).await),
        "/signin",
        "the old password no longer works"
    );
    assert_eq!(
        location(&sign_in(&c, "avery@example.org", new_password).await),
        "/account"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'account.password.reset'")
            .await,
        1
    );
    app.finish().await;
}

/// A staff search for demo patient 4 by account number; the result page's text.
async fn search_sam(b: &Browser) -> String {
    let csrf = b.csrf("/staff").await;
    let r = b
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", ""),
                ("dob", ""),
                ("account", "RFM-101403"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "search");
    text(&r.text().await.expect("body"))
}

async fn practice_admin_revokes_a_guarantor_but_support_agent_cannot(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4(&app, "guardian@example.org").await;
    let s4 = app.statement_of(4).await;
    let grant = active_grant(&app, &patient_of(&app, 4).await).await;
    let agent = staff(&app, "agent@example.org", Role::SupportAgent).await;
    let page = search_sam(&agent).await;
    assert!(page.contains("Sam Okonkwo-Hart"), "agent finds the patient");
    assert!(
        !page.contains("/staff/guarantors/revoke") && !page.contains("/staff/guarantors/invite"),
        "the agent is offered neither revoke nor invite"
    );
    let sam = patient_of(&app, 4).await;
    let r = agent
        .post(
            "/staff/guarantors/invite",
            &[("csrf", &csrf_in(&page)), ("patient", sam.as_str())],
        )
        .await;
    assert!(
        is_refusal(&r),
        "a support agent may not invite: got {}",
        r.status()
    );
    let r = agent
        .post(
            "/staff/guarantors/revoke",
            &[("csrf", &csrf_in(&page)), ("grant", &grant.to_string())],
        )
        .await;
    assert!(
        is_refusal(&r),
        "a support agent may not revoke: got {}",
        r.status()
    );
    assert!(!grant_revoked(&app, grant).await, "the grant stays");
    assert_eq!(
        g.get(&format!("/account/statements/{s4}")).await.status(),
        StatusCode::OK,
        "the guarantor still has access"
    );

    let admin = staff(&app, "admin@example.org", Role::PracticeAdmin).await;
    let page = search_sam(&admin).await;
    assert!(
        page.contains("guardian@example.org"),
        "the admin sees the guarantor"
    );
    assert!(page.contains(&format!("name=\"grant\" value=\"{grant}\"")));
    // The admin may also invite a second guarantor; the link is shown once and works.
    let r = admin
        .post(
            "/staff/guarantors/invite",
            &[("csrf", &csrf_in(&page)), ("patient", sam.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = text(&r.text().await.expect("body"));
    assert!(body.contains(&t("staff-invite-created")));
    let second = Browser::new(&app);
    accept_as_new(
        &second,
        &invite_link_in(&body),
        4,
        "grandparent@example.org",
    )
    .await;
    assert!(
        !text(&admin.page("/staff").await).contains("/g/"),
        "shown once"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        2,
        "the agent's attempt made none"
    );
    let r = admin
        .post(
            "/staff/guarantors/revoke",
            &[("csrf", &csrf_in(&page)), ("grant", &grant.to_string())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(text(&r.text().await.expect("body")).contains(&t("staff-guarantor-revoked")));
    assert!(grant_revoked(&app, grant).await);
    let by: String = sqlx::query_scalar("SELECT revoked_by FROM user_grants WHERE id = $1")
        .bind(grant)
        .fetch_one(app.db().pool())
        .await
        .expect("grant");
    assert!(by.starts_with("user:usr_"), "who revoked is kept: {by}");
    assert_eq!(
        g.get(&format!("/account/statements/{s4}")).await.status(),
        StatusCode::NOT_FOUND,
        "access gone at the guarantor's next request"
    );
    assert!(!text(&g.page("/account").await).contains("Sam"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'guarantor.revoke'")
            .await,
        1
    );
    // Another practice's patient and guarantor are out of the admin's reach.
    let (other, casey, _) = second_practice(&app).await;
    let (_, token) = patriotpay::guarantors::invite(
        app.db().pool(),
        &other,
        &casey,
        "test:lakeside",
        app.state().clock.now(),
    )
    .await
    .expect("invite");
    let lakeside = Browser::new(&app);
    open_invitation(&lakeside, &format!("{}/g/{token}", app.url)).await;
    assert_eq!(
        location(&answer_invitation(&lakeside, "04", "01", "2016", "60601").await),
        "/guarantor/accept"
    );
    let r = submit_account_form(
        &lakeside,
        "/guarantor/accept",
        "lakeside@example.org",
        PASSWORD,
        PASSWORD,
        Some("create"),
    )
    .await;
    assert_eq!(location(&r), "/account");
    let other_grant = active_grant(&app, &casey).await;
    let csrf = admin.csrf("/staff").await;
    let r = admin
        .post(
            "/staff/guarantors/revoke",
            &[("csrf", &csrf), ("grant", &other_grant.to_string())],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another practice's guarantor grant"
    );
    assert!(!grant_revoked(&app, other_grant).await, "and it stays");
    let invitations = app
        .count("SELECT COUNT(*) FROM guarantor_invitations")
        .await;
    let r = admin
        .post(
            "/staff/guarantors/invite",
            &[("csrf", &csrf), ("patient", casey.as_str())],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another practice's patient looks like none"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        invitations
    );
    app.finish().await;
}

// ---- 6. Role matrix ------------------------------------------------------------------------

async fn member_and_staff_sessions_never_stand_in_for_each_other(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = patient_account(&app, 1, "avery@example.org").await;
    let g = guarantor_of_4(&app, "guardian@example.org").await;
    let patient4 = patient_of(&app, 4).await;
    let grant = active_grant(&app, &patient4).await.to_string();
    let invitations = app
        .count("SELECT COUNT(*) FROM guarantor_invitations")
        .await;
    for (who, b) in [("patient", &p), ("guarantor", &g)] {
        let r = b.get("/staff").await;
        assert!(
            location(&r) == "/staff/login" || is_refusal(&r),
            "{who} GET /staff: {} {}",
            r.status(),
            location(&r)
        );
        let csrf = b.csrf("/account").await;
        let forms: [(&str, Vec<(&str, &str)>); 4] = [
            (
                "/staff/search",
                vec![
                    ("last_name", "Quintero"),
                    ("dob", "1984-03-14"),
                    ("account", ""),
                ],
            ),
            (
                "/staff/break-glass",
                vec![
                    ("practice", app.tenant.as_str()),
                    ("role", "practice-admin"),
                    ("minutes", "30"),
                    ("reason", "A member trying to become staff, never allowed"),
                ],
            ),
            (
                "/staff/guarantors/invite",
                vec![("patient", patient4.as_str())],
            ),
            ("/staff/guarantors/revoke", vec![("grant", &grant)]),
        ];
        for (path, mut form) in forms {
            form.push(("csrf", &csrf));
            let r = b.post(path, &form).await;
            let (status, to) = (r.status(), location(&r));
            let body = r.text().await.expect("body");
            assert!(
                to == "/staff/login"
                    || matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{who} POST {path}: {status} {to}"
            );
            assert!(
                !body.contains("Quintero") && !body.contains("/g/"),
                "{who} POST {path} learned nothing"
            );
        }
    }
    assert!(!grant_revoked(&app, grant.parse().unwrap()).await);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        invitations
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE expires_at IS NOT NULL")
            .await,
        0,
        "no emergency grant"
    );
    // A member's password is not a staff sign-in.
    let s = Browser::new(&app);
    let csrf = s.csrf("/staff/login").await;
    let r = s
        .post(
            "/staff/login",
            &[
                ("csrf", &csrf),
                ("email", "avery@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        location(&r),
        "/staff/login",
        "a member account cannot start a staff sign-in"
    );

    // A staff session is not a member session.
    let agent = staff(&app, "agent@example.org", Role::SupportAgent).await;
    let s1 = app.statement_of(1).await;
    let payment: String = sqlx::query_scalar("SELECT id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("patient 1's link payment");
    let checkout: String = sqlx::query_scalar("SELECT id FROM checkouts")
        .fetch_one(app.db().pool())
        .await
        .expect("checkout");
    for path in [
        "/account".to_owned(),
        format!("/account/statements/{s1}"),
        format!("/account/receipt/{payment}"),
        format!("/account/pay/return/{checkout}?session_id=x"),
        format!("/account/pay/cancelled/{checkout}"),
    ] {
        assert_eq!(
            location(&agent.get(&path).await),
            "/signin",
            "staff GET {path}"
        );
    }
    let csrf = agent.csrf("/staff").await;
    let (pay_field, patient1) = (format!("pay_{s1}"), patient_of(&app, 1).await);
    for (path, form) in [
        ("/account/pay", vec![(pay_field.as_str(), "1")]),
        (
            "/account/guarantors/invite",
            vec![("patient", patient1.as_str())],
        ),
        (
            "/account/guarantors/revoke",
            vec![("grant", grant.as_str())],
        ),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let r = agent.post(path, &form).await;
        assert_eq!(location(&r), "/signin", "staff POST {path}");
    }
    assert!(!grant_revoked(&app, grant.parse().unwrap()).await);
    assert_eq!(
        agent.get("/staff").await.status(),
        StatusCode::OK,
        "still a staff session"
    );
    app.finish().await;
}

async fn guarantor_cannot_invite_or_revoke_and_receipts_stay_private(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = patient_account(&app, 1, "avery@example.org").await;
    let g = guarantor_of_4(&app, "guardian@example.org").await;
    let patient4 = patient_of(&app, 4).await;
    let grant = active_grant(&app, &patient4).await;
    let home = g.page("/account").await;
    assert!(
        !home.contains("/account/guarantors/invite") && !home.contains("name=\"grant\""),
        "a guarantor is offered neither invite nor revoke"
    );
    let csrf = csrf_in(&home);
    let r = g
        .post(
            "/account/guarantors/invite",
            &[("csrf", &csrf), ("patient", patient4.as_str())],
        )
        .await;
    assert!(
        matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "guarantor invites for the dependant: {}",
        r.status()
    );
    let r = g
        .post(
            "/account/guarantors/revoke",
            &[("csrf", &csrf), ("grant", &grant.to_string())],
        )
        .await;
    assert!(
        matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "guarantor revokes a guarantor grant: {}",
        r.status()
    );
    assert!(!grant_revoked(&app, grant).await);
    // Nor cancel the practice's pending invitations for the dependant.
    let _ = invitation_for(&app, 4).await;
    let pending: String = sqlx::query_scalar(
        "SELECT id FROM guarantor_invitations WHERE used_at IS NULL AND revoked_at IS NULL",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("pending invitation");
    let r = g
        .post(
            "/account/invitations/revoke",
            &[("csrf", &csrf), ("invitation", &pending)],
        )
        .await;
    assert!(
        matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "guarantor cancels an invitation: {}",
        r.status()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        2,
        "no invitation created by the guarantor"
    );

    // Receipts: patient 1 sees their own link payment's receipt, not patient 2's.
    let own: String = sqlx::query_scalar("SELECT id FROM payments")
        .fetch_one(app.db().pool())
        .await
        .expect("patient 1's payment");
    assert_eq!(
        p.get(&format!("/account/receipt/{own}")).await.status(),
        StatusCode::OK,
        "own receipt"
    );
    let other = Browser::new(&app);
    pay_five_dollars_by_link(&app, &other, 2).await;
    let theirs: String = sqlx::query_scalar("SELECT id FROM payments WHERE id <> $1")
        .bind(&own)
        .fetch_one(app.db().pool())
        .await
        .expect("patient 2's payment");
    let body = not_found_body(
        p.get(&format!("/account/receipt/{theirs}")).await,
        "patient 1 opens patient 2's receipt",
    )
    .await;
    assert!(!body.contains("Jordan") && !body.contains("$5.00"));
    let _ = not_found_body(
        p.get(&format!(
            "/account/receipt/{}",
            patriotpay::ids::PaymentId::generate()
        ))
        .await,
        "a made-up receipt",
    )
    .await;
    let _ = not_found_body(
        g.get(&format!("/account/receipt/{own}")).await,
        "the guarantor opens patient 1's receipt",
    )
    .await;
    app.finish().await;
}

// ---- 7. CSRF -------------------------------------------------------------------------------

/// (browser, its token, path, form fields without the token)
type PostCase<'a> = (&'a Browser, &'a str, &'a str, Vec<(&'a str, &'a str)>);

async fn new_forms_need_the_token_and_our_origin(backend: Backend) {
    let app = TestApp::start(backend).await;
    let p = patient_account(&app, 1, "avery@example.org").await;
    let patient1 = patient_of(&app, 1).await;
    let s1 = app.statement_of(1).await;
    // A visitor part-way through an invitation, for the invitation forms.
    let v = Browser::new(&app);
    open_invitation(&v, &invitation_for(&app, 4).await).await;
    let invitation: String = sqlx::query_scalar("SELECT id FROM guarantor_invitations")
        .fetch_one(app.db().pool())
        .await
        .expect("invitation");
    let member_csrf = p.csrf("/account").await;
    let visitor_csrf = v.csrf("/guarantor/verify").await;
    let (pay_field, amount_field) = (format!("pay_{s1}"), format!("amount_{s1}"));
    let account = [
        ("email", "someone@example.org"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ];
    let cases: Vec<PostCase> = vec![
        (&p, &member_csrf, "/account/create", account.to_vec()),
        (
            &p,
            &member_csrf,
            "/signin",
            vec![("email", "avery@example.org"), ("password", PASSWORD)],
        ),
        (
            &p,
            &member_csrf,
            "/account/pay",
            vec![(pay_field.as_str(), "1"), (amount_field.as_str(), "1.00")],
        ),
        (
            &p,
            &member_csrf,
            "/account/guarantors/invite",
            vec![("patient", patient1.as_str())],
        ),
        (
            &p,
            &member_csrf,
            "/account/guarantors/revoke",
            vec![("grant", "1")],
        ),
        (
            &p,
            &member_csrf,
            "/account/invitations/revoke",
            vec![("invitation", invitation.as_str())],
        ),
        (
            &v,
            &visitor_csrf,
            "/guarantor/verify",
            vec![
                ("dob_month", "02"),
                ("dob_day", "09"),
                ("dob_year", "2015"),
                ("zip", "60622"),
            ],
        ),
        (&v, &visitor_csrf, "/guarantor/accept", {
            let mut f = account.to_vec();
            f.push(("mode", "create"));
            f
        }),
        (
            &p,
            &member_csrf,
            "/staff/guarantors/invite",
            vec![("patient", patient1.as_str())],
        ),
        (
            &p,
            &member_csrf,
            "/staff/guarantors/revoke",
            vec![("grant", "1")],
        ),
    ];
    for (b, csrf, path, form) in &cases {
        let r = b.post(path, form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} without a token");
        let mut wrong = form.clone();
        wrong.push(("csrf", "not-the-token"));
        let r = b.post(path, &wrong).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{path} with a wrong token"
        );
        let mut good = form.clone();
        good.push(("csrf", csrf));
        for (h, value) in [
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ] {
            let r = b
                .client
                .post(format!("{}{path}", app.url))
                .header(h, value)
                .form(&good)
                .send()
                .await
                .expect("post");
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{path} with {h}: {value}"
            );
        }
    }
    // None of that changed anything.
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations WHERE revoked_at IS NULL AND used_at IS NULL AND locked_at IS NULL AND failed_attempts = 0")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM checkouts").await,
        1,
        "only the link payment's checkout"
    );
    assert_eq!(
        location(&v.get("/guarantor/accept").await),
        "/guarantor/verify",
        "the visitor is still unverified"
    );
    // The same form from our own origin, with the token, works.
    let r = p
        .client
        .post(format!("{}/account/guarantors/invite", app.url))
        .header("Origin", app.url.as_str())
        .form(&[
            ("csrf", member_csrf.as_str()),
            ("patient", patient1.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "same-origin post with the token"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM guarantor_invitations")
            .await,
        2
    );
    app.finish().await;
}
