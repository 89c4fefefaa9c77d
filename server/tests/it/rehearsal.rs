//! The incident plan rehearsed end to end (issue 14) against a running portal, with the real
//! binary for every command, on both databases: a support agent views more patients than usual →
//! the anomaly rule raises its alert (and the practice's security officer sees it in the console)
//! → `scope` finds exactly the viewed patients → `revoke-sessions` sends the agent's cookie to
//! the sign-in page → `rotate` retires the old pay links (refused even with the right answers)
//! while the data still reads → `force-password-reset` refuses the old password and mails the
//! member → the audit chain still verifies → `notify` lists exactly the viewed patients with the
//! right times and `postmortem` lists them and every action taken. `kms_cognito_postgres` runs
//! the same plan with the data keys in KMS and every person a Cognito user (moto).

use crate::common::{
    location, member_sign_in, moto_aws_config, moto_url, patient_of, staff_login, text, Backend,
    Browser, TestApp, PASSWORD,
};
use aws_sdk_cognitoidentityprovider::error::SdkError;
use aws_sdk_cognitoidentityprovider::operation::initiate_auth::InitiateAuthError;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, AuthenticationResultType as AuthResult, MessageActionType,
    SoftwareTokenMfaSettingsType, UserStatusType,
};
use patriotpay::access::Role;
use patriotpay::anomaly::{self, Thresholds};
use patriotpay::config::Config;
use patriotpay::ids::UserId;
use reqwest::StatusCode;

both_backends!(the_whole_incident_plan_rehearsed,);

/// A KMS key on moto, and the settings that keep the data keys under it.
async fn kms_key(url: &str) -> impl FnOnce(&mut Config) {
    let key = aws_sdk_kms::Client::new(&moto_aws_config(url).await)
        .create_key()
        .description("patriotpay rehearsal")
        .send()
        .await
        .expect("CreateKey on moto")
        .key_metadata()
        .expect("metadata")
        .arn()
        .expect("arn")
        .to_owned();
    let url = url.to_owned();
    move |cfg: &mut Config| {
        cfg.key_provider = patriotpay::config::KeyProviderKind::AwsKms;
        cfg.kms_key_id = Some(key);
        cfg.aws_region = Some("us-east-1".into());
        cfg.kms_endpoint_url = Some(url);
    }
}

/// The rehearsal on PostgreSQL with the data keys in KMS (moto): the rotation makes its new key
/// versions there, and the data written under the old ones still reads. (Staff here are local
/// accounts; `kms_cognito_postgres` has them at Cognito.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and PostgreSQL: see .ci/run"]
async fn kms_postgres() {
    let kms = kms_key(&moto_url()).await;
    rehearse(
        TestApp::start_with(Backend::Postgres, kms).await,
        &People::Local,
    )
    .await;
}

/// The rehearsal on PostgreSQL with KMS and Cognito both on moto: the security officer, the
/// support agent and the member are Cognito users signing in through the portal's forms (staff
/// with Cognito's software-token MFA). Besides the shared plan: `revoke-sessions` makes Cognito
/// refuse the agent's refresh token (and only the agent's), and `force-password-reset` leaves
/// every Cognito user in RESET_REQUIRED, signed out everywhere and refused by the portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto and PostgreSQL: see .ci/run"]
async fn kms_cognito_postgres() {
    let url = moto_url();
    let kms = kms_key(&url).await;
    let pool = Pool::new(&url).await;
    let app = TestApp::start_with(Backend::Postgres, |cfg| {
        kms(cfg);
        pool.configure(cfg);
    })
    .await;
    rehearse(app, &People::Cognito(pool)).await;
}

/// Runs the binary beside the server; with Cognito, named as the server's identity provider.
fn run(app: &TestApp, people: &People, args: &[&str]) -> String {
    let global = people.cli_args();
    let all: Vec<&str> = global
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect();
    let o = app.cli(&all);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn the_whole_incident_plan_rehearsed(backend: Backend) {
    rehearse(TestApp::start(backend).await, &People::Local).await;
}

async fn rehearse(app: TestApp, people: &People) {
    let s = app.state();
    let practice = app.tenant.to_string();
    let officer = people
        .staff(&app, "security@example.org", Role::SecurityOfficer)
        .await;
    let member = people.member(&app, 1, "avery@example.org").await;
    let old_link = app.link(3).await;

    // A support agent looks at three patients' records.
    let agent = people
        .staff(&app, "curious.agent@example.org", Role::SupportAgent)
        .await;
    let agent_id = agent.id.clone();
    let viewed_at = s.clock.now();
    let mut viewed = vec![];
    for n in [1, 2, 4] {
        let p = patient_of(&app, n).await;
        assert_eq!(
            agent.b.get(&format!("/staff/patients/{p}")).await.status(),
            StatusCode::OK
        );
        viewed.push(p.to_string());
    }
    viewed.sort();
    // The window of the views (the bound is exclusive; patients' records are touched next only
    // after the portal's clock is moved on, below).
    let (since, until) = (viewed_at.to_string(), (s.clock.now() + 1).to_string());

    // The anomaly rule fires (its floor set low enough for three views) and the practice's
    // security officer sees the alert in the console.
    let tight = Thresholds {
        staff_patients_per_hour_floor: 2,
        ..Thresholds::default()
    };
    let found = anomaly::run(&s.db, &s.alerts, &tight, s.clock.now())
        .await
        .expect("rules");
    assert!(
        found.iter().any(|f| f.rule == "staff-patient-views"
            && f.subject == format!("user:{}", agent_id.as_str())
            && f.tenant.as_ref() == Some(&app.tenant)),
        "{found:?}"
    );
    let console = text(&officer.b.page("/staff/alerts").await);
    assert!(console.contains("anomaly.staff-patient-views"), "{console}");

    // Scope: exactly those patients.
    let out = run(
        &app,
        people,
        &[
            "incident", "scope", "--since", &since, "--until", &until, "--json",
        ],
    );
    let scope: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut patients: Vec<String> = scope["patients"]
        .as_array()
        .expect("patients")
        .iter()
        .map(|p| p["patient"].as_str().expect("id").to_owned())
        .collect();
    patients.sort();
    assert_eq!(patients, viewed);

    // Revoke the agent: the old cookie lands on the sign-in page (and, with Cognito, the
    // agent's refresh tokens are revoked there).
    let out = run(
        &app,
        people,
        &["incident", "revoke-sessions", "--user", agent_id.as_str()],
    );
    assert_eq!(location(&agent.b.get("/staff").await), "/staff/login");
    people.revoked(&out, &agent, &officer).await;

    // Rotate (checked below).
    run(&app, people, &["incident", "rotate", "--run", "rehearsal"]);

    // Forced reset: the member's session ends and the old password no longer signs in.
    let out = run(
        &app,
        people,
        &[
            "incident",
            "force-password-reset",
            "--all",
            "--run",
            "rehearsal",
        ],
    );
    assert_eq!(location(&member.b.get("/account").await), "/signin");
    people.reset(&app, &out, &member, &[&officer, &agent]).await;

    // From here the portal's clock is an hour on, so what follows touches no patient inside the
    // window. (Not earlier: the commands stamp revocations with the real time.)
    s.clock.advance(3600);
    // The rotation: an old link is refused even with the right answers; data still reads.
    let b = Browser::new(&app);
    b.open_link(&old_link).await;
    let (m, d, y, _) = crate::common::answers(3);
    assert_eq!(location(&b.submit_dob(&m, &d, &y).await), "/verify");
    let visitor = app.verified_visitor(2).await;
    let statement = visitor.get("/statement").await;
    assert_eq!(
        statement.status(),
        StatusCode::OK,
        "data written before reads"
    );

    // The audit chain still verifies after all of it.
    let out = run(&app, people, &["audit", "verify"]);
    assert!(out.starts_with("OK: "), "{out}");

    // Notify: the practice's affected patients, exactly, with the time of the views.
    let out = run(
        &app,
        people,
        &[
            "incident",
            "notify",
            "--practice",
            &practice,
            "--since",
            &since,
            "--until",
            &until,
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let affected = report["affected"].as_array().expect("affected");
    let mut named: Vec<String> = affected
        .iter()
        .map(|a| a["patient"].as_str().expect("id").to_owned())
        .collect();
    named.sort();
    assert_eq!(named, viewed);
    for a in affected {
        let first = a["first"].as_i64().expect("first");
        assert!(
            (viewed_at..until.parse().expect("until")).contains(&first),
            "{a}"
        );
    }
    assert_eq!(
        report["deadline"].as_i64().expect("deadline")
            - report["discovered"].as_i64().expect("discovered"),
        60 * 86_400
    );

    // Post-mortem: the patients, the agent, and every action taken.
    let md = run(
        &app,
        people,
        &[
            "incident",
            "postmortem",
            "--since",
            &since,
            "--until",
            &until,
        ],
    );
    assert!(md.contains("## Root cause"), "{md}");
    for p in &viewed {
        assert!(md.contains(p.as_str()), "{p}: {md}");
    }
    assert!(md.contains(agent_id.as_str()), "{md}");
    for action in [
        "incident.scope",
        "incident.revoke-sessions",
        "incident.rotate",
        "incident.force-password-reset",
        "incident.notify",
    ] {
        assert!(md.contains(action), "{action}: {md}");
    }
    app.finish().await;
}

// ---- who takes part, and how they sign in --------------------------------------------------

/// The rehearsal's staff and member: local accounts, or users of a Cognito pool on moto.
enum People {
    /// Accounts in the portal's database, made and signed in directly there.
    Local,
    /// Cognito users signing in through the portal's forms.
    Cognito(Pool),
}

/// Someone taking part, signed in.
struct Person {
    b: Browser,
    id: UserId,
    email: String,
    /// Cognito: a refresh token this person also holds outside the portal (another device).
    refresh: Option<String>,
}

/// Every Cognito user's password here (moto's default policy wants every character class).
const COGNITO_PASSWORD: &str = "Perm#Pass12345";

impl People {
    async fn staff(&self, app: &TestApp, email: &str, role: Role) -> Person {
        let Self::Cognito(pool) = self else {
            let (b, id) = app.signed_in_staff(email, role).await;
            return Person {
                b,
                id,
                email: email.into(),
                refresh: None,
            };
        };
        pool.user(email, Some(&format!("{}@{}", role.as_str(), app.tenant)))
            .await;
        // Signed in once outside the portal (its refresh token kept), then a software token
        // enrolled: the portal's sign-in meets Cognito's MFA challenge (moto takes any code).
        let auth = pool.password_auth(email, COGNITO_PASSWORD).await;
        let auth = auth.expect("InitiateAuth");
        let access = auth.access_token().expect("access").to_owned();
        let refresh = auth.refresh_token().expect("refresh").to_owned();
        let idp = &pool.idp;
        idp.associate_software_token()
            .access_token(&access)
            .send()
            .await
            .expect("AssociateSoftwareToken");
        idp.verify_software_token()
            .access_token(&access)
            .user_code("123456")
            .send()
            .await
            .expect("VerifySoftwareToken");
        let mfa = SoftwareTokenMfaSettingsType::builder()
            .enabled(true)
            .preferred_mfa(true)
            .build();
        idp.admin_set_user_mfa_preference()
            .user_pool_id(&pool.id)
            .username(email)
            .software_token_mfa_settings(mfa)
            .send()
            .await
            .expect("AdminSetUserMFAPreference");
        let b = Browser::new(app);
        assert_eq!(
            staff_sign_in_at_cognito(&b, email).await,
            "/staff",
            "{email}"
        );
        Person {
            b,
            id: UserId::from_db(app.user_id_of(email).await),
            email: email.into(),
            refresh: Some(refresh),
        }
    }

    async fn member(&self, app: &TestApp, n: usize, email: &str) -> Person {
        use patriotpay::accounts;
        let Self::Cognito(pool) = self else {
            let (b, id) = app.signed_in_member(n, email).await;
            return Person {
                b,
                id,
                email: email.into(),
                refresh: None,
            };
        };
        // The account as a confirmed sign-up leaves it (`cognito` drives SignUp itself): keyed
        // by the Cognito user's `sub`, no password of ours, a grant over patient `n`.
        let subject = pool.user(email, None).await;
        let (crypto, now) = (&app.state().crypto, app.state().clock.now());
        let account = accounts::NewAccount::prepare(crypto, email)
            .await
            .expect("email");
        let mut tx = app.db().begin_write().await.expect("tx");
        let credentials = accounts::NewCredentials::External { subject };
        let id = accounts::create_member(&mut tx, &account, &credentials, None, now)
            .await
            .expect("member");
        let patient = patient_of(app, n).await;
        accounts::grant_over_patient(
            &mut tx,
            &id,
            Role::Patient,
            &app.tenant,
            &patient,
            "test",
            now,
        )
        .await
        .expect("grant");
        tx.commit().await.expect("commit");
        let auth = pool.password_auth(email, COGNITO_PASSWORD).await;
        let refresh = auth
            .expect("InitiateAuth")
            .refresh_token()
            .map(str::to_owned);
        let b = Browser::new(app);
        let r = member_sign_in(&b, email, COGNITO_PASSWORD).await;
        assert_eq!(
            location(&r),
            "/account",
            "{email} signed in through Cognito"
        );
        Person {
            b,
            id,
            email: email.into(),
            refresh,
        }
    }

    /// Settings the binary takes as arguments: the server's Cognito pool. (`TestApp::cli`
    /// passes the AWS credentials along because KMS is on too.)
    fn cli_args(&self) -> Vec<String> {
        let Self::Cognito(p) = self else {
            return vec![];
        };
        [
            ("--identity-provider", "cognito"),
            ("--cognito-user-pool-id", &p.id),
            ("--cognito-client-id", &p.client),
            ("--cognito-endpoint-url", &p.url),
            ("--cognito-jwks-url", &p.jwks_url()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v.to_owned()])
        .collect()
    }

    /// After `revoke-sessions --user <agent>` (`out`, its output).
    async fn revoked(&self, out: &str, agent: &Person, officer: &Person) {
        let Self::Cognito(pool) = self else {
            assert!(out.contains("(0 at Cognito)"), "{out}");
            return;
        };
        // AdminUserGlobalSignOut for the agent alone: the agent's refresh token from another
        // device is refused by Cognito now, the officer's still works.
        assert!(out.contains("1 account(s) (1 at Cognito)"), "{out}");
        assert!(
            out.contains("Cognito refresh tokens revoked; 0 failed"),
            "{out}"
        );
        assert!(
            !pool.refresh_accepted(&agent.refresh).await,
            "agent's token"
        );
        assert!(
            pool.refresh_accepted(&officer.refresh).await,
            "officer's token"
        );
    }

    /// After `force-password-reset --all` (`out`, its output): the member's old password does
    /// not sign in again; nor (with Cognito) do the staff's.
    async fn reset(&self, app: &TestApp, out: &str, member: &Person, staff: &[&Person]) {
        let fresh = Browser::new(app);
        let Self::Cognito(pool) = self else {
            let r = member_sign_in(&fresh, &member.email, PASSWORD).await;
            assert_eq!(location(&r), "/signin");
            // Local members are mailed to set a new password with an emailed code.
            assert!(app
                .outbox()
                .await
                .iter()
                .any(|m| m.template == "password-reset-required" && m.to == member.email));
            return;
        };
        assert!(
            out.contains("Reset 3 account(s)")
                && out.contains("2 staff, 0 local members, 3 at Cognito"),
            "{out}"
        );
        // Cognito's own reset (AdminResetUserPassword, AdminUserGlobalSignOut): every user is
        // RESET_REQUIRED and the refresh token each holds outside the portal is refused. Cognito
        // mails its own code, so the portal mails no reset notice.
        for who in staff.iter().copied().chain([member]) {
            let status = pool.status(&who.email).await;
            assert_eq!(status, UserStatusType::ResetRequired, "{}", who.email);
            assert!(!pool.refresh_accepted(&who.refresh).await, "{}", who.email);
        }
        assert!(!app
            .outbox()
            .await
            .iter()
            .any(|m| m.template == "password-reset-required"));
        // moto still issues tokens for the old password after the reset (real Cognito answers
        // PasswordResetRequiredException), so here it is the portal's must-reset flag that
        // keeps everyone out: the member's sign-in is refused at the form, like a wrong password.
        let direct = pool.password_auth(&member.email, COGNITO_PASSWORD).await;
        assert!(direct.is_ok(), "moto behaviour changed: {:?}", direct.err());
        let refused = member_sign_in(&fresh, &member.email, COGNITO_PASSWORD).await;
        assert_eq!(location(&refused), "/signin", "member");
        assert_eq!(location(&fresh.get("/account").await), "/signin", "member");
        for who in staff {
            let b = Browser::new(app);
            assert_ne!(staff_sign_in_at_cognito(&b, &who.email).await, "/staff");
            assert_eq!(location(&b.get("/staff").await), "/staff/login");
        }
        // The member's way back: Cognito's emailed code at /account/forgot clears the portal's
        // flag (found by the user's `sub`), and the new password signs in.
        let back = Browser::new(app);
        let csrf = back.csrf("/account/forgot").await;
        let asked = back
            .post(
                "/account/forgot",
                &[("csrf", &csrf), ("email", &member.email)],
            )
            .await;
        assert_eq!(location(&asked), "/account/reset-password");
        let csrf = back.csrf("/account/reset-password").await;
        let new_password = "Newer#Member12345";
        let reset = back
            .post(
                "/account/reset-password",
                &[
                    ("csrf", &csrf),
                    ("code", "123456"),
                    ("password", new_password),
                    ("password_confirm", new_password),
                ],
            )
            .await;
        assert_eq!(location(&reset), "/signin");
        // The reset ended every session begun up to its second (revocations have one-second
        // resolution, and a session of that very second is refused); a person takes longer.
        app.state().clock.advance(1);
        let again = member_sign_in(&back, &member.email, new_password).await;
        assert_eq!(
            location(&again),
            "/account",
            "signed in again after the reset"
        );
        assert_eq!(back.get("/account").await.status(), StatusCode::OK);
    }
}

/// Staff sign-in with the Cognito password and, when asked, the software token's code; where
/// it ends.
async fn staff_sign_in_at_cognito(b: &Browser, email: &str) -> String {
    let mut at = location(&staff_login(b, email, COGNITO_PASSWORD).await);
    if at == "/staff/mfa" {
        let csrf = b.csrf("/staff/mfa").await;
        let form = [("csrf", csrf.as_str()), ("code", "123456")];
        at = location(&b.post("/staff/mfa", &form).await);
    }
    at
}

/// A Cognito user pool on moto with the portal's app client.
struct Pool {
    idp: aws_sdk_cognitoidentityprovider::Client,
    url: String,
    id: String,
    client: String,
}

impl Pool {
    async fn new(url: &str) -> Pool {
        let p = crate::cognito::pool(url).await;
        Pool {
            idp: p.idp,
            url: url.to_owned(),
            id: p.id,
            client: p.client,
        }
    }

    /// moto serves the JWKS on its own address; tokens still carry the real issuer form.
    fn jwks_url(&self) -> String {
        format!("{}/{}/.well-known/jwks.json", self.url, self.id)
    }

    fn configure(&self, cfg: &mut Config) {
        cfg.identity_provider = patriotpay::config::IdentityProviderKind::Cognito;
        cfg.cognito_user_pool_id = Some(self.id.clone());
        cfg.cognito_client_id = Some(self.client.clone());
        cfg.aws_region = Some("us-east-1".into());
        cfg.cognito_endpoint_url = Some(self.url.clone());
        cfg.cognito_jwks_url = Some(self.jwks_url());
    }

    /// A confirmed user with a verified email (Cognito resets only those) and the password
    /// `COGNITO_PASSWORD`, in `group` if given; its `sub`.
    async fn user(&self, email: &str, group: Option<&str>) -> String {
        let attr = |n: &str, v: &str| {
            let a = AttributeType::builder().name(n).value(v).build();
            a.expect("attribute")
        };
        self.idp
            .admin_create_user()
            .user_pool_id(&self.id)
            .username(email)
            .temporary_password("Temp#Pass1234")
            .message_action(MessageActionType::Suppress)
            .user_attributes(attr("email", email))
            .user_attributes(attr("email_verified", "true"))
            .send()
            .await
            .expect("AdminCreateUser");
        self.idp
            .admin_set_user_password()
            .user_pool_id(&self.id)
            .username(email)
            .password(COGNITO_PASSWORD)
            .permanent(true)
            .send()
            .await
            .expect("AdminSetUserPassword");
        if let Some(g) = group {
            let make = self.idp.create_group().user_pool_id(&self.id).group_name(g);
            make.send().await.ok();
            self.idp
                .admin_add_user_to_group()
                .user_pool_id(&self.id)
                .username(email)
                .group_name(g)
                .send()
                .await
                .expect("AdminAddUserToGroup");
        }
        let u = self.get(email).await;
        let sub = u.user_attributes().iter().find(|a| a.name() == "sub");
        sub.and_then(|a| a.value()).expect("sub").to_owned()
    }

    async fn get(
        &self,
        email: &str,
    ) -> aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserOutput {
        let q = self
            .idp
            .admin_get_user()
            .user_pool_id(&self.id)
            .username(email);
        q.send().await.expect("AdminGetUser")
    }

    async fn status(&self, email: &str) -> UserStatusType {
        self.get(email).await.user_status().expect("status").clone()
    }

    /// USER_PASSWORD_AUTH outside the portal (an unenrolled user gets its tokens).
    async fn password_auth(
        &self,
        email: &str,
        password: &str,
    ) -> Result<AuthResult, SdkError<InitiateAuthError>> {
        let q = self.idp.initiate_auth().client_id(&self.client);
        let q = q.auth_flow(AuthFlowType::UserPasswordAuth);
        let q = q.auth_parameters("USERNAME", email);
        let out = q.auth_parameters("PASSWORD", password).send().await?;
        Ok(out.authentication_result().expect("tokens").clone())
    }

    /// Whether Cognito still exchanges this refresh token for new tokens.
    async fn refresh_accepted(&self, token: &Option<String>) -> bool {
        self.idp
            .initiate_auth()
            .client_id(&self.client)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", token.as_deref().expect("a refresh token"))
            .send()
            .await
            .is_ok()
    }
}
