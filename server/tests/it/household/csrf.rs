//! Every form the account and invitation features added needs the token and our origin.

use crate::common::{
    invitation_for, location, open_invitation, patient_account, patient_of, Backend, Browser,
    TestApp, PASSWORD,
};
use reqwest::StatusCode;

both_backends!(new_forms_need_the_token_and_our_origin);

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
            vec![("patient", patient1.as_str()), ("email", "g@example.org")],
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
            vec![("patient", patient1.as_str()), ("email", "g@example.org")],
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
            ("email", "g@example.org"),
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
