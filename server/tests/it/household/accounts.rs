//! Patient accounts: made after paying from a link (both answers, adults only, one per
//! patient), password sign-in with look-alike failures and throttling, the member idle timeout,
//! and the practice removing one. (A forgotten password: `recovery`.)

use crate::common::{
    answers, confirm_and_sign_in, csrf_in, get_with_cookie, h1, location, member_sign_in,
    patient_account, patient_of, pay_five_dollars_by_link, session_cookie, signed_in_staff,
    submit_account_form, t, text, Backend, Browser, TestApp, PASSWORD, SEE_OTHER,
};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    account_creation_needs_a_payment_both_answers_and_a_valid_form,
    sign_out_then_sign_in_with_look_alike_failures_and_throttling,
    member_sessions_idle_out_after_thirty_minutes,
    minors_get_no_account_and_cannot_invite,
    one_account_per_patient_and_the_practice_can_remove_it,
);

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

    // Each bad form: back to the form with the error on the next GET, and no account made. (An
    // address that already has an account is not an error: `signup`.)
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
        (SEE_OTHER, "/account/confirm".to_owned()),
        "on to the code emailed to the address"
    );
    let member_cookie = session_cookie(&r).expect("a new session id on account creation");
    assert_ne!(link_cookie, member_cookie, "session id cycles (fixation)");
    confirm_and_sign_in(&app, &b, "avery@example.org").await;
    let home = text(&b.page("/account").await);
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
    let r1 = member_sign_in(&b, "nobody@example.org", PASSWORD).await;
    let p1 = text(&b.page("/signin").await);
    let r2 = member_sign_in(&b, "avery@example.org", "wrong password!").await;
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
        let r = member_sign_in(&b, "avery@example.org", "wrong password!").await;
        assert_eq!(location(&r), "/signin", "wrong attempt {i}");
    }
    let r = member_sign_in(&b, "avery@example.org", "wrong password!").await;
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
    let r = member_sign_in(&b, "avery@example.org", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(location(&b.get("/account").await), "/signin");
    // After the window, the right password works again.
    app.state().clock.advance(15 * 60 + 1);
    assert_eq!(
        location(&member_sign_in(&b, "avery@example.org", PASSWORD).await),
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
        location(&member_sign_in(&b, "avery@example.org", PASSWORD).await),
        "/account"
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
            &[
                ("csrf", &csrf_in(&home)),
                ("patient", riley.as_str()),
                ("email", "g@example.org"),
            ],
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
                ("email", "g@example.org"),
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
        "/account/forgot",
        "with an account already, the way in is a code to its email"
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
        b.page("/account/forgot")
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
    let admin = signed_in_staff(&app, "admin@example.org", Role::PracticeAdmin).await;
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
