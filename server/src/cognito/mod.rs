//! AWS Cognito as the identity provider: password sign-in and its challenges through
//! `InitiateAuth`/`RespondToAuthChallenge`, self sign-up with an emailed code for patients and
//! guarantors, tokens verified against the pool's JWKS (RS256 only; issuer, token use, audience
//! or client id, expiry), refresh on the server, and the admin calls the incident plan needs.
//! Tokens never leave the server.

use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, ChallengeNameType};
use aws_sdk_cognitoidentityprovider::Client;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

mod jwt;
pub use jwt::*;

#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    #[error("sign-in refused")]
    Refused,
    #[error("token rejected: {0}")]
    Token(&'static str),
    #[error("Cognito unavailable: {0}")]
    Unavailable(String),
    /// The password was right but the sign-up code was never entered.
    #[error("sign-up not confirmed")]
    NotConfirmed,
    /// Sign-up refused: the username exists, or the password breaks the pool's policy.
    #[error("sign-up refused: {0}")]
    SignUpRefused(SignUpRefusal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignUpRefusal {
    UsernameExists,
    PasswordPolicy,
    BadCode,
}

impl std::fmt::Display for SignUpRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignUpRefusal::UsernameExists => "username exists",
            SignUpRefusal::PasswordPolicy => "password policy",
            SignUpRefusal::BadCode => "wrong or expired code",
        })
    }
}

/// A new Cognito user: its subject, and whether it still has to confirm the emailed code.
#[derive(Clone, Debug)]
pub struct SignedUp {
    pub sub: String,
    pub confirmed: bool,
}

/// Settings for the Cognito provider. The JWKS URL and the expected issuer are separate, so a
/// test endpoint can serve keys while tokens still carry the real issuer form.
#[derive(Clone, Debug)]
pub struct CognitoSettings {
    pub user_pool_id: String,
    pub client_id: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub jwks_url: String,
    pub issuer: String,
}

/// Tokens kept in the server-side session only.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix time the access token expires.
    pub expires_at: i64,
}

/// Where a sign-in stands after one call.
#[derive(Debug)]
pub enum Step {
    Done {
        tokens: Box<Tokens>,
        claims: Box<Claims>,
    },
    NewPasswordRequired {
        session: String,
    },
    TotpRequired {
        session: String,
    },
}

pub struct CognitoProvider {
    client: Client,
    settings: CognitoSettings,
    pub verifier: JwtVerifier,
}

fn unavailable<E: std::fmt::Display>(e: E) -> CognitoError {
    CognitoError::Unavailable(e.to_string())
}

/// An SDK failure we don't treat specially: Cognito unreachable or answering oddly. The
/// error's whole context goes into the message (it names the operation, never a password).
fn outage<E: std::error::Error + Send + Sync + 'static>(e: E) -> CognitoError {
    unavailable(aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(
        e,
    ))
}

impl CognitoProvider {
    pub async fn connect(settings: CognitoSettings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(8))
                    .build(),
            );
        if let Some(r) = &settings.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &settings.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        let conf = loader.load().await;
        let verifier = JwtVerifier::new(
            settings.jwks_url.clone(),
            settings.issuer.clone(),
            settings.client_id.clone(),
        );
        CognitoProvider {
            client: Client::new(&conf),
            settings,
            verifier,
        }
    }

    async fn finish(
        &self,
        result: &aws_sdk_cognitoidentityprovider::types::AuthenticationResultType,
        now: i64,
        refresh: Option<String>,
    ) -> Result<Step, CognitoError> {
        let id = result.id_token().ok_or(CognitoError::Refused)?.to_owned();
        let access = result
            .access_token()
            .ok_or(CognitoError::Refused)?
            .to_owned();
        let claims = self.verifier.verify(&id, TokenUse::Id).await?;
        self.verifier.verify(&access, TokenUse::Access).await?;
        let tokens = Tokens {
            id_token: id,
            access_token: access,
            refresh_token: result.refresh_token().map(str::to_owned).or(refresh),
            expires_at: now + i64::from(result.expires_in()),
        };
        Ok(Step::Done {
            tokens: Box::new(tokens),
            claims: Box::new(claims),
        })
    }

    /// Tokens when Cognito returned them, else the challenge it asked for.
    async fn step(
        &self,
        result: Option<&aws_sdk_cognitoidentityprovider::types::AuthenticationResultType>,
        challenge: Option<&ChallengeNameType>,
        session: Option<&str>,
        now: i64,
    ) -> Result<Step, CognitoError> {
        match result {
            Some(r) => self.finish(r, now, None).await,
            None => Self::step_from_challenge(challenge, session),
        }
    }

    fn step_from_challenge(
        name: Option<&ChallengeNameType>,
        session: Option<&str>,
    ) -> Result<Step, CognitoError> {
        let session = session.ok_or(CognitoError::Refused)?.to_owned();
        match name {
            Some(ChallengeNameType::NewPasswordRequired) => {
                Ok(Step::NewPasswordRequired { session })
            }
            Some(ChallengeNameType::SoftwareTokenMfa) => Ok(Step::TotpRequired { session }),
            _ => Err(CognitoError::Refused),
        }
    }

    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Step, CognitoError> {
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.settings.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_user_not_confirmed_exception() => CognitoError::NotConfirmed,
                Some(se)
                    if se.is_not_authorized_exception()
                        || se.is_user_not_found_exception()
                        || se.is_password_reset_required_exception() =>
                {
                    CognitoError::Refused
                }
                _ => outage(e),
            })?;
        self.step(
            out.authentication_result(),
            out.challenge_name(),
            out.session(),
            now,
        )
        .await
    }

    async fn respond(
        &self,
        challenge: ChallengeNameType,
        session: &str,
        responses: HashMap<String, String>,
        now: i64,
    ) -> Result<Step, CognitoError> {
        let out = self
            .client
            .respond_to_auth_challenge()
            .client_id(&self.settings.client_id)
            .challenge_name(challenge)
            .session(session)
            .set_challenge_responses(Some(responses))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se)
                    if se.is_not_authorized_exception()
                        || se.is_code_mismatch_exception()
                        || se.is_invalid_password_exception() =>
                {
                    CognitoError::Refused
                }
                _ => outage(e),
            })?;
        self.step(
            out.authentication_result(),
            out.challenge_name(),
            out.session(),
            now,
        )
        .await
    }

    pub async fn new_password(
        &self,
        session: &str,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Step, CognitoError> {
        let r = [
            ("USERNAME".to_owned(), email.to_owned()),
            ("NEW_PASSWORD".to_owned(), password.to_owned()),
        ]
        .into();
        self.respond(ChallengeNameType::NewPasswordRequired, session, r, now)
            .await
    }

    pub async fn totp(
        &self,
        session: &str,
        email: &str,
        code: &str,
        now: i64,
    ) -> Result<Step, CognitoError> {
        let r = [
            ("USERNAME".to_owned(), email.to_owned()),
            ("SOFTWARE_TOKEN_MFA_CODE".to_owned(), code.trim().to_owned()),
        ]
        .into();
        self.respond(ChallengeNameType::SoftwareTokenMfa, session, r, now)
            .await
    }

    /// New access and ID tokens from the refresh token; fails once the user is signed out
    /// globally or disabled.
    pub async fn refresh(&self, tokens: &Tokens, now: i64) -> Result<Tokens, CognitoError> {
        let refresh = tokens.refresh_token.clone().ok_or(CognitoError::Refused)?;
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.settings.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", &refresh)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se)
                    if se.is_not_authorized_exception() || se.is_user_not_found_exception() =>
                {
                    CognitoError::Refused
                }
                _ => outage(e),
            })?;
        match self
            .finish(
                out.authentication_result().ok_or(CognitoError::Refused)?,
                now,
                Some(refresh),
            )
            .await?
        {
            Step::Done { tokens, .. } => Ok(*tokens),
            _ => Err(CognitoError::Refused),
        }
    }

    /// Self sign-up of a patient or guarantor (username = email). Cognito emails a code unless
    /// the pool confirms users by itself.
    pub async fn sign_up(&self, email: &str, password: &str) -> Result<SignedUp, CognitoError> {
        let email_attr = aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
            .name("email")
            .value(email)
            .build()
            .map_err(unavailable)?;
        let out = self
            .client
            .sign_up()
            .client_id(&self.settings.client_id)
            .username(email)
            .password(password)
            .user_attributes(email_attr)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_username_exists_exception() => {
                    CognitoError::SignUpRefused(SignUpRefusal::UsernameExists)
                }
                Some(se) if se.is_invalid_password_exception() => {
                    CognitoError::SignUpRefused(SignUpRefusal::PasswordPolicy)
                }
                _ => outage(e),
            })?;
        Ok(SignedUp {
            sub: out.user_sub().to_owned(),
            confirmed: out.user_confirmed(),
        })
    }

    /// Emails a new sign-up code.
    pub async fn resend_code(&self, email: &str) -> Result<(), CognitoError> {
        match self
            .client
            .resend_confirmation_code()
            .client_id(&self.settings.client_id)
            .username(email)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Nothing to say to the visitor beyond "sent"; the reason goes to the log.
            Err(e) if e.as_service_error().is_some() => {
                tracing::warn!(error = %aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(&e), "resend code refused");
                Ok(())
            }
            Err(e) => Err(outage(e)),
        }
    }

    /// Confirms a sign-up with the code Cognito emailed.
    pub async fn confirm_sign_up(&self, email: &str, code: &str) -> Result<(), CognitoError> {
        self.client
            .confirm_sign_up()
            .client_id(&self.settings.client_id)
            .username(email)
            .confirmation_code(code.trim())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error() {
                Some(se)
                    if se.is_code_mismatch_exception()
                        || se.is_expired_code_exception()
                        || se.is_user_not_found_exception()
                        || se.is_not_authorized_exception() =>
                {
                    CognitoError::SignUpRefused(SignUpRefusal::BadCode)
                }
                _ => outage(e),
            })
    }

    /// Starts Cognito's forgot-password flow (a code by email). An unknown user is not an error
    /// here, so the page cannot be used to learn who has an account.
    pub async fn forgot_password(&self, email: &str) -> Result<(), CognitoError> {
        match self
            .client
            .forgot_password()
            .client_id(&self.settings.client_id)
            .username(email)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                // Throttling is an outage to report; any other refusal (no such user, no
                // verified email, ...) looks the same as success, so the page tells nothing.
                Some(se)
                    if !se.is_limit_exceeded_exception()
                        && !se.is_too_many_requests_exception() =>
                {
                    tracing::info!(
                        error = %aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(&e),
                        "forgot-password refused"
                    );
                    Ok(())
                }
                _ => Err(outage(e)),
            },
        }
    }

    /// Sets a new password with the emailed code.
    pub async fn confirm_forgot_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
    ) -> Result<(), CognitoError> {
        self.client
            .confirm_forgot_password()
            .client_id(&self.settings.client_id)
            .username(email)
            .confirmation_code(code.trim())
            .password(password)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_invalid_password_exception() => {
                    CognitoError::SignUpRefused(SignUpRefusal::PasswordPolicy)
                }
                Some(se)
                    if se.is_code_mismatch_exception()
                        || se.is_expired_code_exception()
                        || se.is_user_not_found_exception()
                        || se.is_not_authorized_exception() =>
                {
                    CognitoError::SignUpRefused(SignUpRefusal::BadCode)
                }
                _ => outage(e),
            })
    }

    /// The stable subject (`sub`) of a user, from the pool itself.
    pub async fn subject_of(&self, username: &str) -> Result<Option<String>, CognitoError> {
        match self
            .client
            .admin_get_user()
            .user_pool_id(&self.settings.user_pool_id)
            .username(username)
            .send()
            .await
        {
            Ok(u) => Ok(u
                .user_attributes()
                .iter()
                .find(|a| a.name() == "sub")
                .and_then(|a| a.value())
                .map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_user_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(outage(e)),
        }
    }

    /// Sets a user's password, permanent (a member who proved who they are on a pay link).
    pub async fn admin_set_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(), CognitoError> {
        self.client
            .admin_set_user_password()
            .user_pool_id(&self.settings.user_pool_id)
            .username(email)
            .password(password)
            .permanent(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_invalid_password_exception() => {
                    CognitoError::SignUpRefused(SignUpRefusal::PasswordPolicy)
                }
                _ => outage(e),
            })
    }

    /// Deletes a user (an orphaned sign-up).
    pub async fn delete_user(&self, username: &str) -> Result<(), CognitoError> {
        self.client
            .admin_delete_user()
            .user_pool_id(&self.settings.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(outage)
    }

    /// Revokes every refresh token of the user (incident response, "sign out everywhere").
    pub async fn global_sign_out(&self, username: &str) -> Result<(), CognitoError> {
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.settings.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(outage)
    }

    /// Forces a password reset at Cognito. The portal also sets its own must-reset flag,
    /// because some Cognito stand-ins keep issuing tokens after this call.
    pub async fn reset_password(&self, username: &str) -> Result<(), CognitoError> {
        self.client
            .admin_reset_user_password()
            .user_pool_id(&self.settings.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(outage)
    }
}

/// Maps `cognito:groups` to grants: `support-agent@ten_…` is a role in one practice;
/// `platform-admin` stands alone. Unknown or malformed groups are ignored.
pub fn grants_from_groups(
    groups: &[String],
) -> Vec<(crate::access::Role, Option<crate::ids::TenantId>)> {
    groups
        .iter()
        .filter_map(|g| {
            let (role, tenant) = match g.split_once('@') {
                Some((r, t)) => (r, Some(crate::ids::TenantId::parse(t)?)),
                None => (g.as_str(), None),
            };
            let role = crate::access::Role::parse(role).filter(|r| r.is_staff())?;
            match (role, &tenant) {
                (crate::access::Role::PlatformAdmin, None) => Some((role, None)),
                (crate::access::Role::PlatformAdmin, Some(_)) | (_, None) => None,
                _ => Some((role, tenant)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    #[test]
    fn groups_map_to_scoped_roles() {
        let t = crate::ids::TenantId::generate();
        let groups = vec![
            format!("support-agent@{t}"),
            "platform-admin".to_owned(),
            "practice-admin".to_owned(), // staff role without a practice: ignored
            format!("patient@{t}"),      // not a staff role: ignored
            "support-agent@ten_nothex".into(), // malformed practice: ignored
            format!("platform-admin@{t}"), // platform role scoped to a practice: ignored
        ];
        assert_eq!(
            grants_from_groups(&groups),
            vec![(Role::SupportAgent, Some(t)), (Role::PlatformAdmin, None)]
        );
    }
}
