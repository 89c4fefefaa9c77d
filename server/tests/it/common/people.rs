//! Test helpers about people, shared by test modules: catalog text, patients and their pay
//! links, member and guarantor accounts, invitations, staff accounts and sign-in, a second
//! practice.

use super::*;

pub const PASSWORD: &str = "correct horse battery staple";
pub const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;

/// A catalog message, as the pages render it before HTML escaping.
pub fn t(key: &str) -> String {
    patriotpay_app::Tr::default().t(key)
}

pub fn ta(key: &str, args: &[(&str, &str)]) -> String {
    patriotpay_app::Tr::default().ta(key, args)
}

/// A page with HTML's escapes undone, to compare against catalog text.
pub fn text(html: &str) -> String {
    html.replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Demo patient `n`'s date of birth as (month, day, year) and ZIP.
pub fn answers(n: usize) -> (String, String, String, String) {
    let p = &patriotpay::demo::PATIENTS[n - 1];
    let (y, rest) = p.dob.split_at(4);
    (
        rest[1..3].to_owned(),
        rest[4..6].to_owned(),
        y.to_owned(),
        p.zip.to_owned(),
    )
}

pub async fn patient_of(app: &TestApp, n: usize) -> PatientId {
    let stmt = app.statement_of(n).await;
    patriotpay::billing::statement_header(app.db(), &stmt)
        .await
        .expect("query")
        .expect("statement")
        .patient_id
}

/// Posts the household page's pay form: each statement ticked with the amount typed.
pub async fn pay_statements(
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

pub async fn balance(app: &TestApp, s: &StatementId) -> i64 {
    patriotpay::billing::balance(app.db().pool(), s)
        .await
        .expect("balance")
        .cents()
}

/// Demo patient `n` opens a fresh pay link, gives the date of birth only, pays $5.00 with the
/// 4242 test card and sees the receipt.
pub async fn pay_five_dollars_by_link(app: &TestApp, b: &Browser, n: usize) {
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
pub async fn submit_account_form(
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
pub async fn patient_account(app: &TestApp, n: usize, email: &str) -> Browser {
    let b = Browser::new(app);
    pay_five_dollars_by_link(app, &b, n).await;
    assert_eq!(location(&b.get("/account/create").await), "/verify/zip");
    let (_, _, _, zip) = answers(n);
    assert_eq!(location(&b.submit_zip(&zip).await), "/account/create");
    let r = submit_account_form(&b, "/account/create", email, PASSWORD, PASSWORD, None).await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account/confirm".to_owned()),
        "account created for patient {n}, waiting for its code"
    );
    confirm_and_sign_in(app, &b, email).await;
    b
}

/// The code in the newest sign-up email to `to` in the outbox.
pub async fn signup_code_emailed(app: &TestApp, to: &str) -> String {
    let body = app
        .outbox()
        .await
        .into_iter()
        .rev()
        .find(|m| m.template == "confirm-code" && m.to == to)
        .map(|m| m.body)
        .expect("a sign-up code email");
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .expect("an eight-digit code")
        .to_owned()
}

/// Enters the sign-up code emailed to `email` on the code page, then signs in with `PASSWORD`:
/// the browser is signed in to the new account.
pub async fn confirm_and_sign_in(app: &TestApp, b: &Browser, email: &str) {
    confirm_and_sign_in_with(app, b, email, PASSWORD).await
}

/// `confirm_and_sign_in` with the account's own password.
pub async fn confirm_and_sign_in_with(app: &TestApp, b: &Browser, email: &str, password: &str) {
    let code = signup_code_emailed(app, email).await;
    let csrf = b.csrf("/account/confirm").await;
    let r = b
        .post(
            "/account/confirm",
            &[("csrf", csrf.as_str()), ("code", &code)],
        )
        .await;
    assert_eq!(location(&r), "/signin", "the code confirms the address");
    assert_eq!(
        location(&member_sign_in(b, email, password).await),
        "/account",
        "the confirmed account signs in"
    );
}

pub async fn member_sign_in(b: &Browser, email: &str, password: &str) -> Response {
    let csrf = b.csrf("/signin").await;
    b.post(
        "/signin",
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// A fresh practice invitation for demo patient `n`: the full `/g/<token>` URL.
pub async fn invitation_for(app: &TestApp, n: usize) -> String {
    let (_, url) =
        patriotpay::demo::invite_text(app.db(), &app.state().crypto, &app.tenant, n, &app.url)
            .await
            .expect("invitation");
    url
}

pub fn token_of(url: &str) -> String {
    url.rsplit("/g/").next().expect("token").to_owned()
}

/// Opens an invitation link: the token is swapped for a session and a token-free redirect. A
/// browser signed in to an account is asked first and continues with that account.
pub async fn open_invitation(b: &Browser, url: &str) {
    let mut r = b.get(url).await;
    if r.status() == StatusCode::OK {
        let page = r.text().await.expect("body");
        assert!(
            page.contains("name=\"keep\""),
            "only a member is asked: {page}"
        );
        let path = format!("/g/{}", token_of(url));
        r = b
            .post(&path, &[("csrf", &csrf_in(&page)), ("keep", "1")])
            .await;
    }
    assert_eq!(r.status(), SEE_OTHER, "opening an invitation redirects");
    assert_eq!(
        location(&r),
        "/guarantor/verify",
        "the token must not survive the redirect"
    );
}

pub async fn answer_invitation(b: &Browser, m: &str, d: &str, y: &str, zip: &str) -> Response {
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

pub async fn answer_for(b: &Browser, n: usize) -> Response {
    let (m, d, y, zip) = answers(n);
    answer_invitation(b, &m, &d, &y, &zip).await
}

/// Opens and answers an invitation, then creates a guarantor account on it, confirms its address
/// and signs in.
pub async fn accept_as_new(app: &TestApp, b: &Browser, url: &str, n: usize, email: &str) {
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
        (SEE_OTHER, "/account/confirm".to_owned()),
        "guarantor account created on the invitation, waiting for its code"
    );
    confirm_and_sign_in(app, b, email).await;
}

/// Opens and answers an invitation with (month, day, year, zip), signs in as `email`, and
/// accepts onto that account.
pub async fn accept_onto_existing(
    b: &Browser,
    url: &str,
    a: (&str, &str, &str, &str),
    email: &str,
) {
    open_invitation(b, url).await;
    assert_eq!(
        location(&answer_invitation(b, a.0, a.1, a.2, a.3).await),
        "/guarantor/accept"
    );
    assert_eq!(
        location(&member_sign_in(b, email, PASSWORD).await),
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
pub async fn guarantor_of_4(app: &TestApp, email: &str) -> Browser {
    let b = Browser::new(app);
    accept_as_new(app, &b, &invitation_for(app, 4).await, 4, email).await;
    b
}

/// A guarantor account over demo patients 4 and 5 (two invitations, one account).
pub async fn guarantor_of_4_and_5(app: &TestApp, email: &str) -> Browser {
    let b = guarantor_of_4(app, email).await;
    let (m, d, y, zip) = answers(5);
    accept_onto_existing(&b, &invitation_for(app, 5).await, (&m, &d, &y, &zip), email).await;
    b
}

/// The id of the one active guarantor grant over `patient`.
pub async fn active_grant(app: &TestApp, patient: &PatientId) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM user_grants WHERE role = 'guarantor' AND patient_id = $1 AND revoked_at IS NULL",
    )
    .bind(patient.as_str())
    .fetch_one(app.db().pool())
    .await
    .expect("one active guarantor grant")
}

pub async fn grant_revoked(app: &TestApp, grant: i64) -> bool {
    let at: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM user_grants WHERE id = $1")
        .bind(grant)
        .fetch_one(app.db().pool())
        .await
        .expect("grant");
    at.is_some()
}

/// A staff account of `role` in the demo practice, enrolled and signed in over HTTP.
pub async fn signed_in_staff(app: &TestApp, email: &str, role: Role) -> Browser {
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
    staff_sign_in(app, &b, email, &user).await;
    b
}

/// Posts the staff sign-in form (email and password, the first step).
pub async fn staff_login(b: &Browser, email: &str, password: &str) -> Response {
    let csrf = b.csrf("/staff/login").await;
    b.post(
        "/staff/login",
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// Signs an enrolled staff account in (password, then a TOTP code); advances the test clock one
/// TOTP step first so the code is not one used before.
pub async fn staff_sign_in(app: &TestApp, b: &Browser, email: &str, user: &UserId) {
    assert_eq!(
        location(&staff_login(b, email, PASSWORD).await),
        "/staff/mfa"
    );
    app.state().clock.advance(30);
    let code = totp(app, user).await;
    let csrf = b.csrf("/staff/mfa").await;
    let r = b
        .post("/staff/mfa", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(location(&r), "/staff", "{email} signed in");
}

/// The account's current TOTP code at the test clock's time.
pub async fn totp(app: &TestApp, user: &UserId) -> String {
    patriotpay::accounts::current_totp(app.db(), &app.state().crypto, user, app.state().clock.now())
        .await
        .expect("code")
}

/// A second practice with one patient (Casey, 2016-04-01, ZIP 60601) owing $15.00.
pub async fn second_practice(app: &TestApp) -> (TenantId, PatientId, StatementId) {
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
pub async fn not_found_body(r: Response, what: &str) -> String {
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what}");
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.text().await.expect("body").replace(&rid, "RID")
}

/// The link in the newest guarantor-invitation email to `to` in the outbox (pages never show
/// it).
pub async fn invite_link_emailed(app: &TestApp, to: &str) -> String {
    app.outbox()
        .await
        .into_iter()
        .rev()
        .find(|m| m.template == "guarantor-invitation" && m.to == to)
        .and_then(|m| m.link)
        .expect("an invitation email with its link")
}

pub fn is_refusal(r: &Response) -> bool {
    matches!(
        r.status(),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    )
}

/// A permit to read a statement's lines, asked of the policy as its patient (the audit event is
/// written like a page view's), for tests that call the billing readers directly.
pub async fn statement_permit(
    db: &patriotpay::db::Db,
    header: &patriotpay::billing::StatementHeader,
) -> patriotpay::access::Permit {
    let who = patriotpay::access::Principal::patient_of(
        "test".into(),
        &header.tenant_id,
        &header.patient_id,
    );
    patriotpay::access::permit(
        db.pool(),
        patriotpay::access::Ask {
            who: &who,
            actor: &patriotpay::audit::Actor::system("test"),
            action: patriotpay::access::Action::ViewItemisedStatement,
            on: patriotpay::access::Resource {
                tenant: &header.tenant_id,
                patient: Some(&header.patient_id),
                clinical_restricted: false,
            },
            event: "test.statement.view",
            resource: None,
            now: patriotpay::clock::now_unix(),
        },
    )
    .await
    .expect("permit")
}

/// Callers made directly in the database and the session store, for tests that are not about
/// getting in (those drive the real forms instead).
impl TestApp {
    /// A browser holding a session made directly in the store with `data`.
    pub async fn browser_with_session(
        &self,
        data: patriotpay::http::session::SessionData,
    ) -> Browser {
        use tower_sessions::session::{Id, Record};
        use tower_sessions::SessionStore;
        let store = patriotpay::http::session::DbSessionStore::new(self.db().clone());
        let mut record = Record {
            id: Id::default(),
            data: [(
                patriotpay::http::session::RECORD.to_owned(),
                serde_json::to_value(data).expect("session json"),
            )]
            .into(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        };
        store.create(&mut record).await.expect("session row");
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let url: reqwest::Url = self.url.parse().expect("portal url");
        jar.add_cookie_str(&format!("pp_session={}; Path=/", record.id), &url);
        Browser {
            client: Client::builder()
                .cookie_provider(jar)
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: self.url.clone(),
        }
    }

    /// A fresh session record as the server starts one (times on the server's clock).
    fn started_session(&self) -> patriotpay::http::session::SessionData {
        let now = self.state().clock.now();
        patriotpay::http::session::SessionData {
            created_at: now,
            last_seen: now,
            csrf: patriotpay::crypto::random_token(),
            ..Default::default()
        }
    }

    /// A visitor on demo patient `n`'s pay link (a new one) who gave both identity answers.
    pub async fn verified_visitor(&self, n: usize) -> Browser {
        let url = self.link(n).await;
        let token = url.rsplit('/').next().expect("token");
        let link = patriotpay::links::find_by_token(self.db(), token)
            .await
            .expect("query")
            .expect("link");
        let mut data = self.started_session();
        data.link = Some(patriotpay::http::session::LinkVisit {
            link_id: Some(link.id.as_str().to_owned()),
            stage: Some(patriotpay::http::session::Stage::Full),
            after_zip: None,
        });
        self.browser_with_session(data).await
    }

    /// Demo patient `n`'s own account with `email` (local password `PASSWORD`), signed in.
    pub async fn signed_in_member(&self, n: usize, email: &str) -> (Browser, UserId) {
        use patriotpay::accounts;
        let crypto = &self.state().crypto;
        let now = self.state().clock.now();
        let patient = patient_of(self, n).await;
        let account = accounts::NewAccount::prepare(crypto, email)
            .await
            .expect("email");
        let credentials = accounts::NewCredentials::Local {
            password_hash: accounts::hash_password(patriotpay::phi::Phi::new(PASSWORD.into()))
                .await
                .expect("hash"),
        };
        let mut tx = self.db().begin_write().await.expect("tx");
        let user = accounts::create_member(&mut tx, &account, &credentials, None, now)
            .await
            .expect("member");
        accounts::grant_over_patient(
            &mut tx,
            &user,
            Role::Patient,
            &self.tenant,
            &patient,
            "test",
            now,
        )
        .await
        .expect("grant");
        tx.commit().await.expect("commit");
        let mut data = self.started_session();
        data.member = Some(patriotpay::http::session::SignedIn {
            user_id: user.as_str().to_owned(),
            auth_at: now,
            mfa: false,
        });
        (self.browser_with_session(data).await, user)
    }

    /// A staff member with `role` in the demo practice, enrolled (password `PASSWORD`, TOTP)
    /// and signed in with the second factor.
    pub async fn signed_in_staff(&self, email: &str, role: Role) -> (Browser, UserId) {
        let tenant = self.tenant.clone();
        self.signed_in_staff_of(email, role, &tenant).await
    }

    /// `signed_in_staff` with the role held in `tenant`.
    pub async fn signed_in_staff_of(
        &self,
        email: &str,
        role: Role,
        tenant: &TenantId,
    ) -> (Browser, UserId) {
        use patriotpay::accounts;
        let crypto = &self.state().crypto;
        let now = self.state().clock.now();
        let (user, token) = accounts::add_user(self.db(), crypto, email, role, Some(tenant), now)
            .await
            .expect("add user");
        accounts::totp_setup(self.db(), crypto, &user)
            .await
            .expect("totp");
        let code = accounts::current_totp(self.db(), crypto, &user, now)
            .await
            .expect("code");
        accounts::complete_enrolment(
            self.db(),
            crypto,
            &patriotpay::crypto::token_hash(&token),
            patriotpay::phi::Phi::new(PASSWORD.into()),
            &code,
            now,
        )
        .await
        .expect("enrolled");
        let mut data = self.started_session();
        data.staff = Some(patriotpay::http::session::SignedIn {
            user_id: user.as_str().to_owned(),
            auth_at: now,
            mfa: true,
        });
        (self.browser_with_session(data).await, user)
    }
}
