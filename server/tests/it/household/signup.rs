//! Sign-up confirmed by an emailed code (issue 13): an unconfirmed account cannot sign in or
//! reset its password; sign-up answers the same whether or not the address has an account (the
//! owner is emailed instead); a sign-up left unconfirmed for a day gives its address up.

use crate::common::{
    answers, confirm_and_sign_in, csrf_in, location, member_sign_in, pay_five_dollars_by_link,
    signup_code_emailed, submit_account_form, t, text, Backend, Browser, TestApp, PASSWORD,
    SEE_OTHER,
};
use patriotpay::access::Role;

both_backends!(
    signup_answers_the_same_whether_or_not_the_address_has_an_account,
    an_unconfirmed_account_is_unusable_until_its_emailed_code_is_entered,
    an_unconfirmed_signup_gives_its_address_up_after_a_day,
);

/// Demo patient `n` pays by link, answers the ZIP and submits the new-account form with `email`;
/// returns the browser and where the form redirected.
async fn sign_up(app: &TestApp, n: usize, email: &str) -> (Browser, String) {
    let b = Browser::new(app);
    pay_five_dollars_by_link(app, &b, n).await;
    assert_eq!(location(&b.get("/account/create").await), "/verify/zip");
    let (_, _, _, zip) = answers(n);
    assert_eq!(location(&b.submit_zip(&zip).await), "/account/create");
    let r = submit_account_form(&b, "/account/create", email, PASSWORD, PASSWORD, None).await;
    assert_eq!(r.status(), SEE_OTHER);
    (b, location(&r))
}

async fn outbox_count(app: &TestApp, template: &str, to: &str) -> usize {
    app.outbox()
        .await
        .iter()
        .filter(|m| m.template == template && m.to == to)
        .count()
}

async fn enter_code(b: &Browser, code: &str) -> String {
    let csrf = b.csrf("/account/confirm").await;
    location(
        &b.post(
            "/account/confirm",
            &[("csrf", csrf.as_str()), ("code", code)],
        )
        .await,
    )
}

async fn signup_answers_the_same_whether_or_not_the_address_has_an_account(backend: Backend) {
    let app = TestApp::start(backend).await;
    // A staff address: the form must not tell anyone that staff addresses have accounts.
    patriotpay::accounts::add_user(
        app.db(),
        &app.state().crypto,
        "taken@example.org",
        Role::SupportAgent,
        Some(&app.tenant),
        app.state().clock.now(),
    )
    .await
    .expect("an account holding the address");
    let users_before = app.count("SELECT COUNT(*) FROM users").await;

    let (taken, went) = sign_up(&app, 1, " Taken@Example.org ").await;
    assert_eq!(went, "/account/confirm", "the taken address: on to a code");
    let taken_page = text(&taken.page("/account/confirm").await);
    let taken_page = taken_page.replace(&csrf_in(&taken_page), "CSRF");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users").await,
        users_before,
        "no account made"
    );
    assert_eq!(
        outbox_count(&app, "account-exists", "taken@example.org").await,
        1,
        "the address's owner is told instead"
    );
    assert_eq!(
        outbox_count(&app, "confirm-code", "taken@example.org").await,
        0,
        "no code goes to an address with an account"
    );
    let told = app
        .outbox()
        .await
        .into_iter()
        .find(|m| m.template == "account-exists")
        .expect("the notice");
    assert!(
        told.body.contains("/signin") && told.body.contains("/account/forgot"),
        "the notice says how to sign in or reset: {}",
        told.body
    );
    assert_eq!(
        enter_code(&taken, "12345678").await,
        "/account/confirm",
        "no code works for the taken address"
    );
    assert!(text(&taken.page("/account/confirm").await).contains(&t("account-confirm-failed")));

    let (fresh, went) = sign_up(&app, 2, "fresh@example.org").await;
    assert_eq!(went, "/account/confirm", "a new address: on to its code");
    let fresh_page = text(&fresh.page("/account/confirm").await);
    let fresh_page = fresh_page.replace(&csrf_in(&fresh_page), "CSRF");
    assert_eq!(
        taken_page.replace("taken@example.org", "EMAIL"),
        fresh_page.replace("fresh@example.org", "EMAIL"),
        "the two answers read the same"
    );
    assert_eq!(
        outbox_count(&app, "confirm-code", "fresh@example.org").await,
        1
    );

    // Trying the taken address again within the hour emails its owner no more.
    let (_, went) = sign_up(&app, 1, "taken@example.org").await;
    assert_eq!(went, "/account/confirm");
    assert_eq!(
        outbox_count(&app, "account-exists", "taken@example.org").await,
        1,
        "one notice an hour per address"
    );
    app.finish().await;
}

async fn an_unconfirmed_account_is_unusable_until_its_emailed_code_is_entered(backend: Backend) {
    let app = TestApp::start(backend).await;
    let email = "avery@example.org";
    let (b, went) = sign_up(&app, 1, email).await;
    assert_eq!(went, "/account/confirm");
    let first = signup_code_emailed(&app, email).await;
    assert_eq!(
        location(&b.get("/account").await),
        "/signin",
        "not signed in before the code"
    );

    // The right password of an unconfirmed account leads back to the code, not in.
    let other = Browser::new(&app);
    assert_eq!(
        location(&member_sign_in(&other, email, PASSWORD).await),
        "/account/confirm"
    );
    assert_eq!(location(&other.get("/account").await), "/signin");
    // A wrong password says only that it did not match.
    assert_eq!(
        location(&member_sign_in(&other, email, "not the password at all").await),
        "/signin"
    );
    // No reset code goes to an address never confirmed.
    let forgot = Browser::new(&app);
    let csrf = forgot.csrf("/account/forgot").await;
    forgot
        .post(
            "/account/forgot",
            &[("csrf", csrf.as_str()), ("email", email)],
        )
        .await;
    assert_eq!(outbox_count(&app, "reset-code", email).await, 0);

    // A wrong code is refused; a new code replaces the first.
    let wrong = if first == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    assert_eq!(enter_code(&b, wrong).await, "/account/confirm");
    app.state()
        .clock
        .advance(patriotpay::accounts::RESEND_SECS + 1);
    let csrf = b.csrf("/account/confirm").await;
    assert_eq!(
        location(
            &b.post("/account/confirm/resend", &[("csrf", csrf.as_str())])
                .await
        ),
        "/account/confirm"
    );
    assert_eq!(outbox_count(&app, "confirm-code", email).await, 2);
    let second = signup_code_emailed(&app, email).await;
    if second != first {
        assert_eq!(
            enter_code(&b, &first).await,
            "/account/confirm",
            "the first code stopped working"
        );
    }
    confirm_and_sign_in(&app, &b, email).await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'account.email.confirmed' AND outcome = 'success'"
        )
        .await,
        1,
        "the confirmation is audited"
    );
    app.finish().await;
}

async fn an_unconfirmed_signup_gives_its_address_up_after_a_day(backend: Backend) {
    let app = TestApp::start(backend).await;
    let email = "victim@example.org";
    // Someone holding patient 1's link signs up with an address that is not theirs.
    let (_, went) = sign_up(&app, 1, email).await;
    assert_eq!(went, "/account/confirm");
    let squatter = app.user_id_of(email).await;

    // Within the day the address stays with that sign-up (a retry gets a fresh code).
    app.state()
        .clock
        .advance(patriotpay::accounts::RESEND_SECS + 1);
    let (_, went) = sign_up(&app, 2, email).await;
    assert_eq!(went, "/account/confirm");
    assert_eq!(app.user_id_of(email).await, squatter);
    assert_eq!(outbox_count(&app, "confirm-code", email).await, 2);

    // A day later the owner of the address signs up and gets it.
    app.state()
        .clock
        .advance(patriotpay::accounts::UNCONFIRMED_SECS + 1);
    let (owner, went) = sign_up(&app, 2, email).await;
    assert_eq!(went, "/account/confirm");
    let account = app.user_id_of(email).await;
    assert_ne!(account, squatter, "a new account holds the address");
    confirm_and_sign_in(&app, &owner, email).await;
    let squatter_left: (Option<i64>, i64) = sqlx::query_as(
        "SELECT u.disabled_at, (SELECT COUNT(*) FROM user_grants g
                                WHERE g.user_id = u.id AND g.revoked_at IS NULL)
         FROM users u WHERE u.id = $1",
    )
    .bind(&squatter)
    .fetch_one(app.db().pool())
    .await
    .expect("the old sign-up");
    assert!(squatter_left.0.is_some(), "the old sign-up is disabled");
    assert_eq!(squatter_left.1, 0, "and holds no grant");
    app.finish().await;
}
