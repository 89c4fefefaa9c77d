//! Member and staff sessions never stand in for each other, and what a guarantor cannot do.

use crate::common::{
    active_grant, csrf_in, grant_revoked, guarantor_of_4, invitation_for, is_refusal, location,
    not_found_body, patient_account, patient_of, pay_five_dollars_by_link, signed_in_staff,
    Backend, Browser, TestApp, PASSWORD,
};
use patriotpay::access::Role;
use reqwest::StatusCode;

both_backends!(
    member_and_staff_sessions_never_stand_in_for_each_other,
    guarantor_cannot_invite_or_revoke_and_receipts_stay_private,
);

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
                    (
                        "reason",
                        "A member trying to become signed_in_staff, never allowed",
                    ),
                ],
            ),
            (
                "/staff/guarantors/invite",
                vec![("patient", patient4.as_str()), ("email", "g@example.org")],
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
    let agent = signed_in_staff(&app, "agent@example.org", Role::SupportAgent).await;
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
            vec![("patient", patient1.as_str()), ("email", "g@example.org")],
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
            &[
                ("csrf", &csrf),
                ("patient", patient4.as_str()),
                ("email", "g@example.org"),
            ],
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
