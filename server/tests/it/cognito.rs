//! Staff sign-in through AWS Cognito, against moto server: temporary password and the
//! new-password challenge, software-token MFA, `cognito:groups` mapped to roles, tokens verified
//! against the pool's JWKS, refresh on the server failing after a global sign-out, and the
//! portal's own must-reset flag refusing sign-in although moto still issues tokens.
//! Needs `PATRIOTPAY_TEST_MOTO_URL` and static AWS test credentials (see .ci/run).

use crate::common::{location, moto_aws_config, moto_url, staff_login, Backend, Browser, TestApp};
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, ExplicitAuthFlowsType, MessageActionType,
    SoftwareTokenMfaSettingsType,
};
use patriotpay::config::IdentityProviderKind;
use reqwest::StatusCode;

/// A fresh user pool on moto with the portal's app client (password and refresh flows).
pub(crate) struct Pool {
    pub(crate) idp: aws_sdk_cognitoidentityprovider::Client,
    pub(crate) id: String,
    pub(crate) client: String,
}

pub(crate) async fn pool(url: &str) -> Pool {
    let conf = moto_aws_config(url).await;
    let c = aws_sdk_cognitoidentityprovider::Client::new(&conf);
    let name = format!("pp-{}", uuid::Uuid::new_v4().simple());
    let p = c
        .create_user_pool()
        .pool_name(&name)
        .send()
        .await
        .expect("CreateUserPool");
    let id = p
        .user_pool()
        .and_then(|p| p.id())
        .expect("pool id")
        .to_owned();
    let client = c
        .create_user_pool_client()
        .user_pool_id(&id)
        .client_name("portal")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .read_attributes("email")
        .send()
        .await
        .expect("CreateUserPoolClient");
    let client = client
        .user_pool_client()
        .and_then(|c| c.client_id())
        .expect("client id")
        .to_owned();
    Pool { idp: c, id, client }
}

async fn user(p: &Pool, email: &str, group: &str) {
    p.idp
        .create_group()
        .user_pool_id(&p.id)
        .group_name(group)
        .send()
        .await
        .ok();
    p.idp
        .admin_create_user()
        .user_pool_id(&p.id)
        .username(email)
        .temporary_password("Temp#Pass1234")
        .message_action(MessageActionType::Suppress)
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(email)
                .build()
                .expect("attr"),
        )
        .user_attributes(
            AttributeType::builder()
                .name("email_verified")
                .value("true")
                .build()
                .expect("attr"),
        )
        .send()
        .await
        .expect("AdminCreateUser");
    p.idp
        .admin_add_user_to_group()
        .user_pool_id(&p.id)
        .username(email)
        .group_name(group)
        .send()
        .await
        .expect("group");
}

async fn app(url: &str, p: &Pool, backend: Backend) -> TestApp {
    let (url, id, client) = (url.to_owned(), p.id.clone(), p.client.clone());
    TestApp::start_with(backend, move |cfg| {
        cfg.identity_provider = IdentityProviderKind::Cognito;
        cfg.cognito_user_pool_id = Some(id.clone());
        cfg.cognito_client_id = Some(client);
        cfg.aws_region = Some("us-east-1".into());
        cfg.cognito_endpoint_url = Some(url.clone());
        // moto serves the JWKS on its own address; tokens still carry the real issuer form.
        cfg.cognito_jwks_url = Some(format!("{url}/{id}/.well-known/jwks.json"));
    })
    .await
}

/// True when `s` holds something shaped like a JWT: `eyJ…` header, a dot, `eyJ…` payload, a
/// dot. (A bare "eyJ" can occur by chance inside base64 ciphertext; the dots cannot.)
fn has_jwt(s: &str) -> bool {
    let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    s.match_indices("eyJ").any(|(i, _)| {
        let rest = &s[i..];
        let Some(dot) = rest.find(|c: char| !b64url(c)) else {
            return false;
        };
        dot > 10 && rest[dot..].starts_with(".eyJ")
    })
}

/// No JWT and none of `needles` in `logs`.
fn no_secrets_logged(logs: &str, needles: &[&str]) {
    assert!(!logs.is_empty(), "logs were captured");
    assert!(!has_jwt(logs), "a token was logged");
    for n in needles {
        assert!(!crate::canary::holds(logs.as_bytes(), n), "logs hold {n:?}");
    }
}

#[test]
fn jwt_shape_detector() {
    assert!(has_jwt("x eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig"));
    assert!(
        !has_jwt("QUJDeyJhbGciOiJSUzI1NiJ9QUJD"),
        "eyJ inside base64 is not a token"
    );
}

async fn search_text(b: &Browser) -> (StatusCode, String) {
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
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn cognito_sign_in_mfa_refresh_and_reset() {
    let logs = crate::canary::logs();
    let url = moto_url();
    let p = pool(&url).await;
    let app = app(&url, &p, Backend::Sqlite).await;
    let email = "agent@example.org";
    user(&p, email, &format!("support-agent@{}", app.tenant)).await;

    // Wrong password: the same refusal as local accounts.
    let b = Browser::new(&app);
    assert_eq!(
        location(&staff_login(&b, email, "wrong password").await),
        "/staff/login"
    );
    assert!(b
        .page("/staff/login")
        .await
        .contains("did not match an active account"));

    // Temporary password → new-password challenge → signed in, groups mapped to the role.
    assert_eq!(
        location(&staff_login(&b, email, "Temp#Pass1234").await),
        "/staff/new-password"
    );
    let csrf = b.csrf("/staff/new-password").await;
    let r = b
        .post(
            "/staff/new-password",
            &[
                ("csrf", &csrf),
                ("password", "Perm#Pass12345"),
                ("password_confirm", "Perm#Pass12345"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/staff");
    let home = b.page("/staff").await;
    assert!(
        home.contains("Support agent at Riverside Family Medicine"),
        "cognito:groups mapped"
    );
    // No second factor yet: the policy gives staff nothing.
    assert!(home.contains("Your role does not include patient search."));
    assert_eq!(search_text(&b).await.0, StatusCode::FORBIDDEN);
    let csrf = b.csrf("/staff").await;
    let _ = b.post("/staff/signout", &[("csrf", &csrf)]).await;

    // Enrol a software token at Cognito, then sign in with it.
    let auth = p
        .idp
        .initiate_auth()
        .client_id(&p.client)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", email)
        .auth_parameters("PASSWORD", "Perm#Pass12345")
        .send()
        .await
        .expect("auth");
    let access = auth
        .authentication_result()
        .and_then(|r| r.access_token())
        .expect("access")
        .to_owned();
    p.idp
        .associate_software_token()
        .access_token(&access)
        .send()
        .await
        .expect("associate");
    p.idp
        .verify_software_token()
        .access_token(&access)
        .user_code("123456")
        .send()
        .await
        .expect("verify");
    p.idp
        .admin_set_user_mfa_preference()
        .user_pool_id(&p.id)
        .username(email)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("mfa preference");
    assert_eq!(
        location(&staff_login(&b, email, "Perm#Pass12345").await),
        "/staff/mfa"
    );
    let csrf = b.csrf("/staff/mfa").await;
    assert_eq!(
        location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", "123456")])
                .await
        ),
        "/staff"
    );
    let (status, body) = search_text(&b).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Avery Quintero"),
        "with MFA the support role can search"
    );
    // Tokens stay on the server, encrypted: no JWT or refresh token in the sessions table.
    let sessions: Vec<String> = sqlx::query_scalar("SELECT data FROM sessions")
        .fetch_all(app.db().pool())
        .await
        .expect("sessions");
    assert!(
        sessions.iter().any(|d| d.contains("sealed_tokens")),
        "tokens are kept in the session"
    );
    assert!(
        sessions.iter().all(|d| !has_jwt(d)),
        "no token in plain text at rest"
    );

    // Refresh happens on the server as the access token nears expiry; it keeps working...
    let clock = app.state().clock.clone();
    for _ in 0..6 {
        clock.advance(10 * 60);
        assert_eq!(b.get("/staff").await.status(), StatusCode::OK);
    }
    // ...until Cognito revokes the refresh token (global sign-out): the next refresh fails and
    // the session ends, although the old tokens are still cryptographically valid.
    p.idp
        .admin_user_global_sign_out()
        .user_pool_id(&p.id)
        .username(email)
        .send()
        .await
        .expect("global sign-out");
    let mut ended = false;
    for _ in 0..7 {
        clock.advance(10 * 60);
        if location(&b.get("/staff").await) == "/staff/login" {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "session ended at the first refresh after global sign-out"
    );

    // Forced reset: moto keeps issuing tokens, the portal's own flag refuses the sign-in.
    patriotpay::accounts::force_reset(app.db(), &app.state().crypto, email, None, clock.now())
        .await
        .expect("reset");
    p.idp
        .admin_reset_user_password()
        .user_pool_id(&p.id)
        .username(email)
        .send()
        .await
        .expect("AdminResetUserPassword");
    let direct = p
        .idp
        .initiate_auth()
        .client_id(&p.client)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", email)
        .auth_parameters("PASSWORD", "Perm#Pass12345")
        .send()
        .await;
    let b = Browser::new(&app);
    let r = staff_login(&b, email, "Perm#Pass12345").await;
    // moto still answers after the reset (real Cognito would say PasswordResetRequired)...
    assert!(direct.is_ok(), "moto behaviour changed: {:?}", direct.err());
    // ...so it is the portal's own flag that refuses the sign-in.
    let mut loc = location(&r);
    if loc == "/staff/mfa" {
        let csrf = b.csrf("/staff/mfa").await;
        loc = location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", "123456")])
                .await,
        );
    }
    assert_ne!(loc, "/staff", "must-reset flag refuses the sign-in");
    assert_eq!(location(&b.get("/staff").await), "/staff/login");

    // The way back: Cognito's forgot-password flow (emailed code, new password) also clears
    // the portal's flag, found by the user's `sub`.
    let b = Browser::new(&app);
    assert!(b
        .page("/staff/login")
        .await
        .contains("Forgot your password?"));
    let csrf = b.csrf("/staff/forgot").await;
    assert_eq!(
        location(
            &b.post("/staff/forgot", &[("csrf", &csrf), ("email", email)])
                .await
        ),
        "/staff/reset"
    );
    let csrf = b.csrf("/staff/reset").await;
    let r = b
        .post(
            "/staff/reset",
            &[
                ("csrf", &csrf),
                ("code", "123456"),
                ("password", "Newer#Pass12345"),
                ("password_confirm", "Newer#Pass12345"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/staff/login");
    assert!(b
        .page("/staff/login")
        .await
        .contains("Your password was changed"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE must_reset = 1")
            .await,
        0,
        "the reset cleared the portal's flag"
    );
    let mut loc = location(&staff_login(&b, email, "Newer#Pass12345").await);
    if loc == "/staff/mfa" {
        let csrf = b.csrf("/staff/mfa").await;
        loc = location(
            &b.post("/staff/mfa", &[("csrf", &csrf), ("code", "123456")])
                .await,
        );
    }
    assert_eq!(loc, "/staff", "signed in again after the reset");
    // An unknown email gets the same next step (no account enumeration).
    let u = Browser::new(&app);
    let csrf = u.csrf("/staff/forgot").await;
    assert_eq!(
        location(
            &u.post(
                "/staff/forgot",
                &[("csrf", &csrf), ("email", "nobody@example.org")]
            )
            .await
        ),
        "/staff/reset"
    );

    // Accounts are matched on `sub`, not on an email a user could change: another Cognito
    // user claiming this email is refused, not merged into this account.
    user(
        &p,
        "other@example.org",
        &format!("support-agent@{}", app.tenant),
    )
    .await;
    p.idp
        .admin_update_user_attributes()
        .user_pool_id(&p.id)
        .username("other@example.org")
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(email)
                .build()
                .expect("attr"),
        )
        .send()
        .await
        .expect("AdminUpdateUserAttributes");
    let b = Browser::new(&app);
    assert_eq!(
        location(&staff_login(&b, "other@example.org", "Temp#Pass1234").await),
        "/staff/new-password"
    );
    let csrf = b.csrf("/staff/new-password").await;
    let r = b
        .post(
            "/staff/new-password",
            &[
                ("csrf", &csrf),
                ("password", "Perm#Pass12345"),
                ("password_confirm", "Perm#Pass12345"),
            ],
        )
        .await;
    assert_eq!(
        location(&r),
        "/staff/login",
        "refused, not signed in as the other account"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE external_subject IS NOT NULL")
            .await,
        1
    );
    // The canary's rule for the Cognito flows: no token, password or account email in any log
    // line written while they ran.
    no_secrets_logged(&logs.text(), &[email, "Perm#Pass12345"]);
    app.finish().await;
}

/// A patient who paid from a link signs up with Cognito: the portal calls SignUp, asks for the
/// emailed code (ConfirmSignUp), refuses sign-in before that, then signs in through Cognito
/// into the member account tied to the patient; no JWT is stored in the clear.
#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn cognito_patient_sign_up_confirm_and_sign_in() {
    let logs = crate::canary::logs();
    let url = moto_url();
    let p = pool(&url).await;
    let app = app(&url, &p, Backend::Sqlite).await;
    let email = "avery.patient@example.org";
    let password = "Patient#Pass12345";

    let b = Browser::new(&app);
    b.verified_patient1(&app).await;
    let checkout = location(&b.pay("10.00").await);
    let back = location(&b.card(&checkout, "4242424242424242").await);
    let receipt = location(&b.get(&back).await);
    assert!(receipt.starts_with("/receipt/pay_"), "{receipt}");
    let csrf = b.csrf("/account/create").await;
    let r = b
        .post(
            "/account/create",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await;
    assert_eq!(
        location(&r),
        "/account/confirm",
        "Cognito wants the emailed code"
    );
    let users = p
        .idp
        .list_users()
        .user_pool_id(&p.id)
        .send()
        .await
        .expect("ListUsers");
    assert_eq!(users.users().len(), 1, "one Cognito user made by SignUp");
    let page = b.page("/account/confirm").await;
    assert!(page.contains(email), "the page says where the code went");

    // Not confirmed yet: sign-in is refused like a wrong password.
    let other = Browser::new(&app);
    let csrf = other.csrf("/signin").await;
    let r = other
        .post(
            "/signin",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await;
    assert_eq!(
        location(&r),
        "/account/confirm",
        "unconfirmed sign-up with the right password is sent to finish it, not signed in"
    );
    assert_eq!(
        location(&other.get("/account").await),
        "/signin",
        "not signed in"
    );
    assert!(other.page("/account/confirm").await.contains(email));
    // (ResendConfirmationCode is not implemented by moto, so the "Send a new code" button is not
    // exercised here.)
    // The pending email is sealed in the session record, not stored in the clear.
    let sessions: Vec<String> = sqlx::query_scalar("SELECT data FROM sessions")
        .fetch_all(app.db().pool())
        .await
        .expect("sessions");
    assert!(
        sessions.iter().all(|d| !d.contains(email)),
        "an email in a session record"
    );

    // moto accepts any code; the portal passes the one typed.
    let csrf = b.csrf("/account/confirm").await;
    let r = b
        .post("/account/confirm", &[("csrf", &csrf), ("code", "123456")])
        .await;
    assert_eq!(location(&r), "/signin");
    assert!(b
        .page("/signin")
        .await
        .contains("Your email address is confirmed"));
    let csrf = b.csrf("/signin").await;
    let r = b
        .post(
            "/signin",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await;
    assert_eq!(location(&r), "/account");
    let home = b.page("/account").await;
    assert!(home.contains("Your statements"), "the patient's own record");
    assert!(
        home.contains("$102.00"),
        "the balance after paying $10.00: {home}"
    );
    // Wrong password through Cognito: the same answer as an unknown account.
    let c = Browser::new(&app);
    for (who, pw) in [(email, "Wrong#Pass12345"), ("nobody@example.org", password)] {
        let csrf = c.csrf("/signin").await;
        let r = c
            .post(
                "/signin",
                &[("csrf", &csrf), ("email", who), ("password", pw)],
            )
            .await;
        assert_eq!(location(&r), "/signin", "{who}");
        assert!(c.page("/signin").await.contains("did not match an account"));
    }
    // The member account is keyed by Cognito's subject and holds no password of ours.
    let (hash, subject): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT password_hash, external_subject FROM users WHERE email_index = $1")
            .bind(
                patriotpay::accounts::email_index(&app.state().crypto, email)
                    .await
                    .expect("index"),
            )
            .fetch_one(app.db().pool())
            .await
            .expect("member row");
    assert!(hash.is_none(), "Cognito holds the password");
    assert!(subject.is_some_and(|s| !s.is_empty()));
    let sessions: Vec<(String,)> = sqlx::query_as("SELECT data FROM sessions")
        .fetch_all(app.db().pool())
        .await
        .expect("sessions");
    for (data,) in sessions {
        assert!(
            !has_jwt(&data),
            "a JWT sits in a session record in the clear"
        );
    }
    // Forgotten password: Cognito's ForgotPassword emails the code (moto accepts any code; the
    // portal passes the one typed), then the new password is set at Cognito. A pay link and its
    // answers are no way in.
    let r = Browser::new(&app);
    let csrf = r.csrf("/account/forgot").await;
    let res = r
        .post("/account/forgot", &[("csrf", &csrf), ("email", email)])
        .await;
    assert_eq!(location(&res), "/account/reset-password");
    let csrf = r.csrf("/account/reset-password").await;
    let newer = "Patient#Newer12345";
    let res = r
        .post(
            "/account/reset-password",
            &[
                ("csrf", &csrf),
                ("code", "123456"),
                ("password", newer),
                ("password_confirm", newer),
            ],
        )
        .await;
    assert_eq!(location(&res), "/signin", "signing in takes the email");
    let after = Browser::new(&app);
    let csrf = after.csrf("/signin").await;
    let res = after
        .post(
            "/signin",
            &[("csrf", &csrf), ("email", email), ("password", newer)],
        )
        .await;
    assert_eq!(
        location(&res),
        "/account",
        "the new password works at Cognito"
    );

    // A staff sign-in page does not accept the member.
    let s = Browser::new(&app);
    assert_eq!(
        location(&staff_login(&s, email, newer).await),
        "/staff/login",
        "a member's Cognito user is refused at staff sign-in"
    );
    assert_eq!(location(&s.get("/staff").await), "/staff/login");
    // The canary's rule for the Cognito flows: no token, password, account email or the
    // patient's details in any log line written while they ran.
    no_secrets_logged(
        &logs.text(),
        &[email, password, newer, "Quintero", "1984-03-14", "60614"],
    );
    app.finish().await;
}
