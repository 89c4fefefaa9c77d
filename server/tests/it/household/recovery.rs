//! A forgotten member password (issue 13): reset only with the one-time code emailed to the
//! account's own address, never from a pay link; the owner told by email, with a "this wasn't
//! me" link that signs the account out everywhere and alerts the practice.

use crate::common::{
    csrf_in, location, member_sign_in, patient_account, Backend, Browser, TestApp, PASSWORD,
};
use reqwest::StatusCode;

both_backends!(
    forgotten_password_is_reset_only_with_the_emailed_code,
    reset_codes_are_limited_per_address,
);

/// One address may ask for `RESET_REQUESTS_PER_ADDRESS` codes an hour, whichever accounts it
/// names; the next is refused with 429 and nothing is sent, until the hour has passed.
async fn reset_codes_are_limited_per_address(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = Browser::new(&app);
    let ask = |n: i64| {
        let b = b.clone();
        async move {
            let csrf = csrf_in(&b.page("/account/forgot").await);
            let email = format!("someone{n}@example.org");
            b.post(
                "/account/forgot",
                &[("csrf", csrf.as_str()), ("email", email.as_str())],
            )
            .await
        }
    };
    let max = patriotpay::accounts::RESET_REQUESTS_PER_ADDRESS;
    for n in 0..max {
        assert_eq!(
            location(&ask(n).await),
            "/account/reset-password",
            "request {n}"
        );
    }
    let refused = ask(max).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    app.state()
        .clock
        .advance(patriotpay::accounts::REQUEST_WINDOW_SECS + 1);
    assert_eq!(location(&ask(max + 1).await), "/account/reset-password");
    app.finish().await;
}

/// The emails in the outbox after sign-up, oldest first (the sign-up code left out).
async fn emails(app: &TestApp) -> Vec<crate::common::OutboxMessage> {
    app.outbox()
        .await
        .into_iter()
        .filter(|m| m.channel == "email" && m.template != "confirm-code")
        .collect()
}

/// The eight-digit code in a reset email.
fn code_in(body: &str) -> String {
    body.split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit()))
        .expect("a code")
        .to_owned()
}

/// A forgotten password is reset only with the one-time code emailed to the account's own
/// address (issue 13): a pay link and both identity answers are no way in; the form answers
/// the same for an address without an account; a wrong code is refused (and five of them burn
/// it), a spent code works once; afterwards every old session is over, the old password fails,
/// the new one works, and the owner is told by email.
async fn forgotten_password_is_reset_only_with_the_emailed_code(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old_session = patient_account(&app, 1, "avery@example.org").await;
    assert_eq!(old_session.get("/account").await.status(), StatusCode::OK);
    // The link's answers no longer reset anything; the statement points at the emailed code.
    let b = Browser::new(&app);
    b.open_link(&app.link(1).await).await;
    let _ = b.submit_dob("03", "14", "1984").await;
    let _ = b.submit_zip("60614").await;
    assert_eq!(
        location(&b.get("/account/reset-password").await),
        "/account/forgot"
    );
    assert!(b.page("/statement").await.contains("/account/forgot"));

    // An address without an account gets the same answer, and no email.
    let forgot = |b: &Browser, email: &'static str| {
        let b = b.clone();
        async move {
            let csrf = csrf_in(&b.page("/account/forgot").await);
            b.post(
                "/account/forgot",
                &[("csrf", csrf.as_str()), ("email", email)],
            )
            .await
        }
    };
    let r = forgot(&b, "not-an-address").await;
    assert_eq!(location(&r), "/account/forgot");
    let r = forgot(&b, "nobody@example.org").await;
    assert_eq!(location(&r), "/account/reset-password");
    assert!(b
        .page("/account/reset-password")
        .await
        .contains("If nobody@example.org has an account, we emailed it a code"));
    assert!(emails(&app).await.is_empty());

    let r = forgot(&b, "avery@example.org").await;
    assert_eq!(location(&r), "/account/reset-password");
    let sent = emails(&app).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].template.as_str(), sent[0].to.as_str()),
        ("reset-code", "avery@example.org")
    );
    let code = code_in(&sent[0].body);
    // Nothing in the database holds the code itself.
    let dump = crate::common::dump_database(&app).await;
    assert!(!dump.windows(8).any(|w| w == code.as_bytes()));

    let reset = |b: &Browser, code: String, pw: &'static str| {
        let b = b.clone();
        async move {
            let csrf = csrf_in(&b.page("/account/reset-password").await);
            b.post(
                "/account/reset-password",
                &[
                    ("csrf", csrf.as_str()),
                    ("code", code.as_str()),
                    ("password", pw),
                    ("password_confirm", pw),
                ],
            )
            .await
        }
    };
    let new_password = "a brand new passphrase";
    // A weak password does not spend the code; a wrong code is refused.
    assert_eq!(
        location(&reset(&b, code.clone(), "short").await),
        "/account/reset-password"
    );
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    assert_eq!(
        location(&reset(&b, wrong.into(), new_password).await),
        "/account/reset-password"
    );
    assert!(b
        .page("/account/reset-password")
        .await
        .contains("That code was not accepted"));
    let r = reset(&b, code.clone(), new_password).await;
    assert_eq!(location(&r), "/signin");
    assert!(b
        .page("/signin")
        .await
        .contains("Your new password is set. Sign in with your email address"));
    // The owner is told.
    let sent = emails(&app).await;
    assert!(sent
        .iter()
        .any(|m| m.template == "password-changed" && m.to == "avery@example.org"));
    assert_eq!(
        location(&old_session.get("/account").await),
        "/signin",
        "the session from before the reset ended"
    );
    let c = Browser::new(&app);
    assert_eq!(
        location(&member_sign_in(&c, "avery@example.org", PASSWORD).await),
        "/signin",
        "the old password no longer works"
    );
    assert_eq!(
        location(&member_sign_in(&c, "avery@example.org", new_password).await),
        "/account"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'account.password.reset'")
            .await,
        1
    );

    // The spent code works no more; a new one, guessed wrong five times, is burnt.
    let d = Browser::new(&app);
    assert_eq!(
        location(&forgot(&d, "avery@example.org").await),
        "/account/reset-password"
    );
    assert_eq!(
        location(&reset(&d, code.clone(), "another new passphrase").await),
        "/account/reset-password"
    );
    app.state()
        .clock
        .advance(patriotpay::accounts::RESEND_SECS + 1);
    assert_eq!(
        location(&forgot(&d, "avery@example.org").await),
        "/account/reset-password"
    );
    let latest = emails(&app)
        .await
        .into_iter()
        .filter(|m| m.template == "reset-code")
        .count();
    assert_eq!(
        latest, 2,
        "one new code, the request inside a minute sent none"
    );
    let second = code_in(
        &emails(&app)
            .await
            .into_iter()
            .rfind(|m| m.template == "reset-code")
            .expect("second code")
            .body,
    );
    // Five wrong tries burn a code (asked of the accounts module directly: through the page,
    // wrong codes also count as failed sign-ins, and the account's delay would come first).
    let s = app.state();
    let wrong = if second == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..patriotpay::accounts::MAX_CODE_TRIES {
        let r = patriotpay::accounts::redeem_reset_code(
            &s.db,
            &s.crypto,
            "avery@example.org",
            wrong,
            s.clock.now(),
        )
        .await
        .expect("redeem");
        assert!(r.is_none());
    }
    let r = patriotpay::accounts::redeem_reset_code(
        &s.db,
        &s.crypto,
        "avery@example.org",
        &second,
        s.clock.now(),
    )
    .await
    .expect("redeem");
    assert!(r.is_none(), "burnt");

    // "This wasn't me": the password-changed email's link asks first (a GET changes nothing),
    // then signs the account out everywhere and alerts; it works once.
    let notice = emails(&app)
        .await
        .into_iter()
        .find(|m| m.template == "password-changed")
        .expect("notice");
    let link = notice
        .body
        .split_whitespace()
        .find(|w| w.contains("/account/not-me/"))
        .expect("a not-me link")
        .to_owned();
    let path = link.trim_start_matches(&app.url).to_owned();
    let owner = Browser::new(&app);
    assert_eq!(
        location(&member_sign_in(&owner, "avery@example.org", new_password).await),
        "/account"
    );
    let e = Browser::new(&app);
    let page = e.page(&path).await;
    assert!(page.contains("Sign my account out everywhere"), "{page}");
    assert_eq!(
        owner.get("/account").await.status(),
        StatusCode::OK,
        "still signed in after the GET"
    );
    let token = path.rsplit('/').next().expect("token").to_owned();
    let csrf = csrf_in(&page);
    let r = e
        .post(
            "/account/not-me",
            &[("csrf", csrf.as_str()), ("token", token.as_str())],
        )
        .await;
    assert!(r
        .text()
        .await
        .expect("page")
        .contains("signed out everywhere and your practice was alerted"));
    assert_eq!(
        location(&owner.get("/account").await),
        "/signin",
        "every session ended"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE kind = 'account.not_me'")
            .await,
        1
    );
    assert!(Browser::new(&app)
        .page(&path)
        .await
        .contains("This link no longer works"));
    app.finish().await;
}
