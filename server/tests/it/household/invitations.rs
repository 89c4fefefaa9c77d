//! Guarantor invitations: five wrong answers lock one, each is single use (also when two
//! acceptances race), they expire, and a second one joins the same account.

use crate::common::{
    answer_for, answer_invitation, confirm_and_sign_in, csrf_in, h1, invitation_for, location,
    member_sign_in, open_invitation, submit_account_form, t, ta, text, token_of, Backend, Browser,
    TestApp, PASSWORD, SEE_OTHER,
};

both_backends!(
    five_wrong_answers_lock_an_invitation,
    invitation_is_single_use_and_a_second_one_joins_the_same_account,
    racing_acceptances_of_one_invitation_give_one_grant,
    racing_loser_is_told_the_invitation_is_gone,
    invitation_expires_after_fourteen_days,
);

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
    assert_eq!(location(&r), "/account/confirm", "on to the emailed code");
    confirm_and_sign_in(&app, &b, "guardian@example.org").await;
    let home = text(&b.page("/account").await);
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
    let r = member_sign_in(&b, "guardian@example.org", PASSWORD).await;
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
    if la == "/account/confirm" {
        [(a, la), (b, lb)]
    } else {
        [(b, lb), (a, la)]
    }
}

async fn racing_acceptances_of_one_invitation_give_one_grant(backend: Backend) {
    let app = TestApp::start(backend).await;
    let [(_, won), (_, lost)] = race_two_acceptances(&app).await;
    assert_eq!(won, "/account/confirm", "one visitor accepts");
    assert_ne!(lost, "/account/confirm", "the other does not");
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
