//! Staff sign-in over HTTP on both databases: enrolment, password + TOTP, recovery codes,
//! throttling, fixation, idle/absolute timeouts on the test clock, revocation, and a
//! policy-checked, audited patient search.

use crate::common::{
    csrf_in, h1, location, session_cookie, staff_sign_in, Backend, Browser, TestApp, PASSWORD,
};
use patriotpay::access::Role;
use patriotpay::ids::UserId;
use reqwest::StatusCode;

both_backends!(
    enrol_then_sign_in_with_totp,
    wrong_answers_look_alike_and_are_throttled,
    timeouts_follow_the_clock,
    revocation_and_disable_end_sessions,
    search_is_policy_checked_and_audited,
    break_glass_is_time_boxed_and_loud,
    role_matrix_over_http,
);

/// Creates an account and completes enrolment over HTTP; returns its id and recovery codes.
async fn enrolled(app: &TestApp, email: &str, role: Role) -> (UserId, Vec<String>) {
    let tenant = (role != Role::PlatformAdmin).then_some(&app.tenant);
    enrolled_in(app, email, role, tenant).await
}

async fn enrolled_in(
    app: &TestApp,
    email: &str,
    role: Role,
    tenant: Option<&patriotpay::ids::TenantId>,
) -> (UserId, Vec<String>) {
    let now = app.state().clock.now();
    let (user, token) =
        patriotpay::accounts::add_user(app.db(), &app.state().crypto, email, role, tenant, now)
            .await
            .expect("add user");
    let b = Browser::new(app);
    let r = b.get(&format!("/staff/enrol/{token}")).await;
    assert_eq!(location(&r), "/staff/enrol", "token swapped for a session");
    let page = b.page("/staff/enrol").await;
    assert!(page.contains("<svg"), "QR code rendered server-side");
    assert_eq!(
        page,
        b.page("/staff/enrol").await,
        "reload shows the same secret"
    );
    let code = patriotpay::accounts::current_totp(app.db(), &app.state().crypto, &user, now)
        .await
        .expect("code");
    let csrf = csrf_in(&page);
    // Mismatched and short passwords are refused with the error on the field.
    let r = b
        .post(
            "/staff/enrol",
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("password_confirm", "x"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/staff/enrol",
            &[
                ("csrf", &csrf),
                ("password", "short"),
                ("password_confirm", "short"),
                ("code", &code),
            ],
        )
        .await;
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("Use 8 to 128 characters."));
    let r = b
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
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.expect("body");
    assert_eq!(h1(&body), "Save your recovery codes");
    let codes: Vec<String> = body
        .split("<li><code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 10);
    // The link is spent.
    let again = Browser::new(app);
    let _ = again.get(&format!("/staff/enrol/{token}")).await;
    assert_eq!(
        again.get("/staff/enrol").await.status(),
        StatusCode::NOT_FOUND
    );
    // A new sign-in factor: the owner is emailed, with a "this wasn't me" link.
    let to = patriotpay::accounts::normalize_email(email);
    let mut told = app.outbox().await.into_iter().rev();
    let notice = told.find(|m| m.template == "factor-added" && m.to == to);
    assert!(notice.is_some_and(|m| m.body.contains("/account/not-me/")));
    (user, codes)
}

async fn enrol_then_sign_in_with_totp(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (user, codes) = enrolled(&app, "Agent@Example.org", Role::SupportAgent).await;
    let b = Browser::new(&app);
    assert_eq!(location(&b.get("/staff").await), "/staff/login");
    let csrf = b.csrf("/staff/login").await;
    let r = b
        .post(
            "/staff/login",
            &[
                ("csrf", &csrf),
                ("email", " agent@example.org "),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&r), "/staff/mfa");
    let after_password = session_cookie(&r).expect("cycled on password");
    assert_eq!(
        location(&b.get("/staff").await),
        "/staff/login",
        "a password alone is not a sign-in"
    );
    // A wrong code, then the right one; the same code cannot be used twice.
    app.state().clock.advance(30);
    let now = app.state().clock.now();
    let code = patriotpay::accounts::current_totp(app.db(), &app.state().crypto, &user, now)
        .await
        .expect("code");
    let csrf = b.csrf("/staff/mfa").await;
    let r = b
        .post("/staff/mfa", &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!(location(&r), "/staff/mfa");
    assert!(b
        .page("/staff/mfa")
        .await
        .contains("That code was not accepted"));
    let r = b
        .post("/staff/mfa", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(location(&r), "/staff");
    let signed_in = session_cookie(&r).expect("cycled on second factor");
    assert_ne!(after_password, signed_in);
    let home = b.page("/staff").await;
    assert!(
        home.contains("agent@example.org")
            && home.contains("Support agent at Riverside Family Medicine")
    );
    // The half-signed-in session id is dead.
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = stale
        .get(format!("{}/staff", app.url))
        .header("Cookie", after_password)
        .send()
        .await
        .expect("get");
    assert_eq!(location(&r), "/staff/login");
    // Sign out, then a replayed code fails; a recovery code works once.
    let csrf = b.csrf("/staff").await;
    assert_eq!(
        location(&b.post("/staff/signout", &[("csrf", &csrf)]).await),
        "/staff/login"
    );
    let r = stale
        .get(format!("{}/staff", app.url))
        .header("Cookie", signed_in)
        .send()
        .await
        .expect("get");
    assert_eq!(
        location(&r),
        "/staff/login",
        "sign-out removed the server-side session"
    );
    let csrf = b.csrf("/staff/login").await;
    let _ = b
        .post(
            "/staff/login",
            &[
                ("csrf", &csrf),
                ("email", "agent@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let csrf = b.csrf("/staff/mfa").await;
    assert_eq!(
        location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", &code)])
                .await
        ),
        "/staff/mfa",
        "replayed TOTP"
    );
    assert_eq!(
        location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", &codes[0])])
                .await
        ),
        "/staff"
    );
    let csrf = b.csrf("/staff").await;
    let _ = b.post("/staff/signout", &[("csrf", &csrf)]).await;
    let csrf = b.csrf("/staff/login").await;
    let _ = b
        .post(
            "/staff/login",
            &[
                ("csrf", &csrf),
                ("email", "agent@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let csrf = b.csrf("/staff/mfa").await;
    assert_eq!(
        location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", &codes[0])])
                .await
        ),
        "/staff/mfa",
        "spent recovery code"
    );
    app.finish().await;
}

async fn wrong_answers_look_alike_and_are_throttled(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (user, _) = enrolled(&app, "admin@example.org", Role::PracticeAdmin).await;
    let b = Browser::new(&app);
    let attempt = |email: &'static str, password: &'static str| {
        let b = &b;
        async move {
            let csrf = b.csrf("/staff/login").await;
            b.post(
                "/staff/login",
                &[("csrf", &csrf), ("email", email), ("password", password)],
            )
            .await
        }
    };
    // Unknown account and wrong password: the same answer.
    let r1 = attempt("nobody@example.org", PASSWORD).await;
    let p1 = b.page("/staff/login").await;
    let r2 = attempt("admin@example.org", "wrong password!").await;
    let p2 = b.page("/staff/login").await;
    assert_eq!((r1.status(), location(&r1)), (r2.status(), location(&r2)));
    assert_eq!(p1.replace(&csrf_in(&p1), ""), p2.replace(&csrf_in(&p2), ""));
    for _ in 0..4 {
        let _ = attempt("admin@example.org", "wrong password!").await;
    }
    // Five failures: even the right password now gets 429 with Retry-After.
    let r = attempt("admin@example.org", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 0 && retry <= 15 * 60);
    assert!(r.text().await.expect("body").contains("Too many attempts"));
    // After the window, the right password works again.
    app.state().clock.advance(15 * 60 + 1);
    staff_sign_in(&app, &b, "admin@example.org", &user).await;
    app.finish().await;
}

async fn timeouts_follow_the_clock(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (user, _) = enrolled(&app, "agent@example.org", Role::SupportAgent).await;
    let clock = app.state().clock.clone();
    // Staff: 14 minutes idle is fine, 15+ is not.
    let b = Browser::new(&app);
    staff_sign_in(&app, &b, "agent@example.org", &user).await;
    clock.advance(14 * 60);
    assert_eq!(b.get("/staff").await.status(), StatusCode::OK);
    clock.advance(15 * 60 + 1);
    assert_eq!(location(&b.get("/staff").await), "/staff/login");
    // Patients: 29 minutes idle is fine, 31 is not.
    let p = Browser::new(&app);
    p.verified_patient1(&app).await;
    clock.advance(29 * 60);
    assert_eq!(p.get("/summary").await.status(), StatusCode::OK);
    clock.advance(31 * 60);
    assert_eq!(location(&p.get("/summary").await), "/expired");
    // Absolute: active every 7 minutes, still ended after 12 hours (steps of 7 keep clear of
    // the exact boundary, so the seconds the test itself takes don't matter).
    let p = Browser::new(&app);
    p.verified_patient1(&app).await;
    let mut ended_after = None;
    for i in 1..=120 {
        clock.advance(7 * 60);
        if p.get("/summary").await.status() != StatusCode::OK {
            ended_after = Some(i * 7);
            break;
        }
    }
    assert_eq!(ended_after, Some(721), "minutes until the absolute timeout");
    app.finish().await;
}

async fn revocation_and_disable_end_sessions(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (user, _) = enrolled(&app, "agent@example.org", Role::SupportAgent).await;
    let laptop = Browser::new(&app);
    let phone = Browser::new(&app);
    staff_sign_in(&app, &laptop, "agent@example.org", &user).await;
    staff_sign_in(&app, &phone, "agent@example.org", &user).await;
    app.state().clock.advance(1);
    let csrf = laptop.csrf("/staff").await;
    assert_eq!(
        location(
            &laptop
                .post("/staff/signout-everywhere", &[("csrf", &csrf)])
                .await
        ),
        "/staff/login"
    );
    assert_eq!(
        location(&phone.get("/staff").await),
        "/staff/login",
        "the other device is signed out"
    );
    // Signing in again afterwards works.
    app.state().clock.advance(1);
    staff_sign_in(&app, &phone, "agent@example.org", &user).await;
    assert_eq!(phone.get("/staff").await.status(), StatusCode::OK);
    // Disabling the account ends its session and stops sign-in.
    assert!(patriotpay::accounts::disable(
        app.db(),
        &app.state().crypto,
        "agent@example.org",
        app.state().clock.now()
    )
    .await
    .expect("disable"));
    assert_eq!(location(&phone.get("/staff").await), "/staff/login");
    let csrf = phone.csrf("/staff/login").await;
    let r = phone
        .post(
            "/staff/login",
            &[
                ("csrf", &csrf),
                ("email", "agent@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&r), "/staff/login");
    app.finish().await;
}

async fn search_is_policy_checked_and_audited(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (agent, _) = enrolled(&app, "agent@example.org", Role::SupportAgent).await;
    let (officer, _) = enrolled(&app, "officer@example.org", Role::SecurityOfficer).await;
    let b = Browser::new(&app);
    staff_sign_in(&app, &b, "agent@example.org", &agent).await;
    let csrf = b.csrf("/staff").await;
    let r = b
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "QUINTERO"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await;
    let page = r.text().await.expect("body");
    assert!(
        page.contains("Avery Quintero — Riverside Family Medicine"),
        "found by last name and date of birth"
    );
    let r = b
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", ""),
                ("dob", ""),
                ("account", "rfm 100877"),
            ],
        )
        .await;
    assert!(
        r.text().await.expect("body").contains("Jordan Whitlock"),
        "found by account number"
    );
    let r = b
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "Quintero"),
                ("dob", "1984-03-15"),
                ("account", ""),
            ],
        )
        .await;
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("No patient matches."));
    let views: i64 = app
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'patient.search.result.view'")
        .await;
    assert_eq!(views, 2, "each patient shown is an audited view");
    let searches: i64 = app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'patient.search' AND outcome = 'success'").await;
    assert_eq!(searches, 3);
    // A security officer's role has no patient search: refused, and the refusal audited.
    let o = Browser::new(&app);
    staff_sign_in(&app, &o, "officer@example.org", &officer).await;
    assert!(o
        .page("/staff")
        .await
        .contains("Your role does not include patient search."));
    let csrf = o.csrf("/staff").await;
    let r = o
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.expect("body").contains("Quintero"));
    let denied: i64 = app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'patient.search' AND outcome = 'denied'").await;
    assert_eq!(denied, 1);
    // Without a session: nothing.
    let anon = Browser::new(&app);
    let r = anon
        .post(
            "/staff/search",
            &[
                ("csrf", "x"),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.finish().await;
}

async fn break_glass_is_time_boxed_and_loud(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (officer, _) = enrolled(&app, "officer@example.org", Role::SecurityOfficer).await;
    let (agent, _) = enrolled(&app, "agent@example.org", Role::SupportAgent).await;
    let o = Browser::new(&app);
    staff_sign_in(&app, &o, "officer@example.org", &officer).await;
    let home = o.page("/staff").await;
    assert!(
        home.contains("Emergency access")
            && home.contains("Your role does not include patient search.")
    );
    let csrf = csrf_in(&home);
    let practice = app.tenant.as_str();
    // A reason is required; so are sane minutes.
    for (minutes, reason) in [
        ("60", "too short"),
        ("0", "Patient on the phone cannot pay; admin unreachable"),
        ("241", "Patient on the phone cannot pay; admin unreachable"),
        ("x", "Patient on the phone cannot pay; admin unreachable"),
    ] {
        let r = o
            .post(
                "/staff/break-glass",
                &[
                    ("csrf", &csrf),
                    ("practice", practice),
                    ("role", "practice-admin"),
                    ("minutes", minutes),
                    ("reason", reason),
                ],
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{minutes} {reason}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_grants WHERE expires_at IS NOT NULL")
            .await,
        0
    );
    let r = o
        .post(
            "/staff/break-glass",
            &[
                ("csrf", &csrf),
                ("practice", practice),
                ("role", "practice-admin"),
                ("minutes", "30"),
                (
                    "reason",
                    "Patient on the phone cannot pay; admin unreachable",
                ),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("body");
    assert!(
        page.contains("Emergency access granted")
            && page.contains("Emergency access: Practice admin at Riverside Family Medicine until")
    );
    // Loud: an audit event and an alert naming who and what; the free-text reason (which could
    // name a patient) stays with the grant.
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'breakglass.grant' AND outcome = 'success'").await, 1);
    // (Encrypted, bound to the grant's row: see rekey.rs.)
    let (grant, sealed): (i64, Vec<u8>) =
        sqlx::query_as("SELECT id, reason_ct FROM user_grants WHERE expires_at IS NOT NULL")
            .fetch_one(app.db().pool())
            .await
            .expect("grant");
    let grant = grant.to_string();
    let reason = app
        .state()
        .crypto
        .decrypt_str(
            patriotpay::accounts::reason_aad(&app.tenant, &grant),
            &sealed,
        )
        .await
        .expect("reason opens");
    assert!(reason.expose().contains("admin unreachable"));
    let detail: String = sqlx::query_scalar("SELECT detail FROM alerts WHERE kind = 'break-glass'")
        .fetch_one(app.db().pool())
        .await
        .expect("alert");
    assert!(
        detail.contains("officer@example.org")
            && detail.contains("practice-admin")
            && !detail.contains("admin unreachable")
    );
    // The elevated role works now...
    let csrf = o.csrf("/staff").await;
    let r = o
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await;
    assert!(r.text().await.expect("body").contains("Avery Quintero"));
    // ...and ends by itself.
    app.state().clock.advance(31 * 60);
    staff_sign_in(&app, &o, "officer@example.org", &officer).await;
    let csrf = o.csrf("/staff").await;
    let r = o
        .post(
            "/staff/search",
            &[
                ("csrf", &csrf),
                ("last_name", "Quintero"),
                ("dob", "1984-03-14"),
                ("account", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Other roles cannot grant it.
    let a = Browser::new(&app);
    staff_sign_in(&app, &a, "agent@example.org", &agent).await;
    assert!(!a.page("/staff").await.contains("Emergency access"));
    let csrf = a.csrf("/staff").await;
    let r = a
        .post(
            "/staff/break-glass",
            &[
                ("csrf", &csrf),
                ("practice", practice),
                ("role", "practice-admin"),
                ("minutes", "30"),
                ("reason", "I would like more access than I have, please"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.finish().await;
}

/// The policy matrix as staff meet it over HTTP: every staff role against patient search and
/// emergency access, and a support agent of another practice who must see only their own.
async fn role_matrix_over_http(backend: Backend) {
    let app = TestApp::start(backend).await;
    // A second practice with a patient of the same name and birth date.
    let (db, crypto) = (app.db().clone(), app.state().crypto.clone());
    let other = patriotpay::billing::create_tenant(&db, "Lakeside Pediatrics", "(555) 010-9900")
        .await
        .expect("tenant");
    let phi = |s: &str| patriotpay::phi::Phi::new(s.to_owned());
    patriotpay::billing::import_patient(
        &db,
        &crypto,
        &other,
        &patriotpay::billing::NewPatient {
            first_name: phi("Casey"),
            last_name: phi("Quintero"),
            dob: phi("1984-03-14"),
            zip: phi("10001"),
            phone: phi("+15550109999"),
            account_number: phi("LP-1"),
        },
    )
    .await
    .expect("patient");
    // (role, practice, may search, may grant emergency access)
    let cases: Vec<(Role, Option<&patriotpay::ids::TenantId>, bool, bool)> = vec![
        (Role::SupportAgent, Some(&app.tenant), true, false),
        (Role::PracticeAdmin, Some(&app.tenant), true, false),
        (Role::SecurityOfficer, Some(&app.tenant), false, true),
        (Role::Auditor, Some(&app.tenant), false, false),
        (Role::PlatformAdmin, None, false, false),
        (Role::SupportAgent, Some(&other), true, false),
    ];
    for (i, (role, tenant, search, glass)) in cases.into_iter().enumerate() {
        let email = format!("staff{i}@example.org");
        let (user, _) = enrolled_in(&app, &email, role, tenant).await;
        let b = Browser::new(&app);
        staff_sign_in(&app, &b, &email, &user).await;
        let csrf = b.csrf("/staff").await;
        let r = b
            .post(
                "/staff/search",
                &[
                    ("csrf", &csrf),
                    ("last_name", "Quintero"),
                    ("dob", "1984-03-14"),
                    ("account", ""),
                ],
            )
            .await;
        let status = r.status();
        let page = r.text().await.expect("body");
        assert_eq!(status == StatusCode::OK, search, "{role:?} search");
        if search {
            let home_practice = tenant == Some(&app.tenant);
            assert_eq!(
                page.contains("Avery Quintero — Riverside Family Medicine"),
                home_practice,
                "{role:?} sees its own practice only"
            );
            assert_eq!(
                page.contains("Casey Quintero — Lakeside Pediatrics"),
                !home_practice,
                "{role:?} sees its own practice only"
            );
        } else {
            assert!(!page.contains("Quintero"), "{role:?} learned nothing");
        }
        let r = b
            .post(
                "/staff/break-glass",
                &[
                    ("csrf", &csrf),
                    ("practice", app.tenant.as_str()),
                    ("role", "support-agent"),
                    ("minutes", "15"),
                    ("reason", "Matrix test: checking who may grant this"),
                ],
            )
            .await;
        assert_eq!(r.status() == StatusCode::OK, glass, "{role:?} break-glass");
        // A patient's pages are not staff pages: a staff session has no statement.
        assert_eq!(
            location(&b.get("/statement").await),
            "/expired",
            "{role:?} statement"
        );
    }
    app.finish().await;
}
