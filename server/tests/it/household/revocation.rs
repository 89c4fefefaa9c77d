//! Revoking a guarantor: the patient invites then revokes; a practice admin revokes (a support
//! agent cannot, nor anyone across practices).

use crate::common::{
    accept_as_new, active_grant, answer_for, answer_invitation, csrf_in, grant_revoked,
    guarantor_of_4, invite_link_emailed, is_refusal, location, open_invitation, patient_account,
    patient_of, second_practice, signed_in_staff, submit_account_form, t, ta, text, token_of,
    Backend, Browser, TestApp, PASSWORD,
};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    patient_invites_then_revokes_a_guarantor,
    practice_admin_revokes_a_guarantor_but_support_agent_cannot,
);

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
            &[
                ("csrf", &csrf_in(&home)),
                ("patient", patient1.as_str()),
                ("email", "Helper@Example.org "),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = text(&r.text().await.expect("body"));
    assert!(
        page.contains("Invitation emailed to h\u{2022}\u{2022}\u{2022}@example.org"),
        "where it went, masked"
    );
    assert!(!page.contains("/g/"), "the link is never shown");
    let link = invite_link_emailed(&app, "helper@example.org").await;
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
    assert!(!home.contains("/g/"), "the link is not shown");
    assert!(
        home.contains(&t("account-invitations-title")),
        "the pending invitation is listed"
    );

    // A second invitation, cancelled by the patient: its link no longer leads anywhere.
    let r = p
        .post(
            "/account/guarantors/invite",
            &[
                ("csrf", &csrf_in(&home)),
                ("patient", patient1.as_str()),
                ("email", "second@example.org"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cancelled = invite_link_emailed(&app, "second@example.org").await;
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
    accept_as_new(&app, &g, &link, 1, "spouse@example.org").await;
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
    let agent = signed_in_staff(&app, "agent@example.org", Role::SupportAgent).await;
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
            &[
                ("csrf", &csrf_in(&page)),
                ("patient", sam.as_str()),
                ("email", "someone@example.org"),
            ],
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

    let admin = signed_in_staff(&app, "admin@example.org", Role::PracticeAdmin).await;
    let page = search_sam(&admin).await;
    assert!(
        page.contains("guardian@example.org"),
        "the admin sees the guarantor"
    );
    assert!(page.contains(&format!("name=\"grant\" value=\"{grant}\"")));
    // The admin may also invite a second guarantor: an address is needed, the link is emailed
    // (never shown) and works.
    let r = admin
        .post(
            "/staff/guarantors/invite",
            &[
                ("csrf", &csrf_in(&page)),
                ("patient", sam.as_str()),
                ("email", "not an address"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&r.text().await.expect("body")).contains(&t("invite-email-invalid")));
    let r = admin
        .post(
            "/staff/guarantors/invite",
            &[
                ("csrf", &csrf_in(&page)),
                ("patient", sam.as_str()),
                ("email", "grandparent@example.org"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = text(&r.text().await.expect("body"));
    assert!(body.contains("Invitation emailed to g\u{2022}\u{2022}\u{2022}@example.org"));
    assert!(!body.contains("/g/"), "the link is never shown");
    let emailed = invite_link_emailed(&app, "grandparent@example.org").await;
    let sent = app.outbox().await;
    let letter = sent
        .iter()
        .find(|m| m.template == "guarantor-invitation")
        .expect("the invitation email");
    assert_eq!(
        (letter.channel.as_str(), letter.state.as_str()),
        ("email", "queued")
    );
    assert!(
        letter.body.contains("14 days") && !letter.body.contains("Sam"),
        "the link and its expiry, not the patient: {}",
        letter.body
    );
    let second = Browser::new(&app);
    accept_as_new(&app, &second, &emailed, 4, "grandparent@example.org").await;
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
    assert_eq!(location(&r), "/account/confirm");
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
            &[
                ("csrf", &csrf),
                ("patient", casey.as_str()),
                ("email", "someone@example.org"),
            ],
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
