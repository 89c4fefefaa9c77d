//! Identity providers behind one trait, chosen by `PATRIOTPAY_IDENTITY_PROVIDER`: local accounts
//! (argon2id passwords, the portal's own TOTP and recovery codes) and AWS Cognito (its password
//! sign-in and challenges, self sign-up with an emailed code, forgot-password, tokens verified
//! against the pool's JWKS). Handlers never ask which one they have; sign-in throttling,
//! sessions, grants and the policy stay with the portal.

use crate::accounts::{self, AccountError, Kind, NewCredentials};
use crate::cognito::{self, CognitoError, CognitoProvider, SignUpRefusal, Tokens};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::UserId;
use crate::phi::Phi;
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Wrong password or code, unknown or unusable account: one answer for all of them.
    #[error("not accepted")]
    Refused,
    /// The password was right but the portal requires a reset first (`users reset`).
    #[error("password reset required")]
    ResetRequired,
    /// The account was disabled or reset while a sign-in was half done: start again.
    #[error("account no longer usable")]
    Ended,
    /// The password was right but the sign-up code was never entered.
    #[error("sign-up not confirmed")]
    Unconfirmed,
    #[error("email already in use")]
    EmailTaken,
    #[error("password does not meet the provider's policy")]
    PasswordPolicy,
    /// This provider has no such flow (local accounts have no emailed codes).
    #[error("not offered by this identity provider")]
    Unsupported,
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<CognitoError> for IdentityError {
    fn from(e: CognitoError) -> Self {
        match e {
            CognitoError::Unavailable(m) => IdentityError::Unavailable(m),
            CognitoError::NotConfirmed => IdentityError::Unconfirmed,
            CognitoError::SignUpRefused(SignUpRefusal::UsernameExists) => IdentityError::EmailTaken,
            CognitoError::SignUpRefused(SignUpRefusal::PasswordPolicy) => {
                IdentityError::PasswordPolicy
            }
            CognitoError::SignUpRefused(SignUpRefusal::BadCode)
            | CognitoError::Refused
            | CognitoError::Token(_) => IdentityError::Refused,
        }
    }
}

/// A half-finished sign-in, kept in the session between steps.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub email: String,
    /// Local accounts: the account whose password was right.
    pub user: Option<String>,
    /// Cognito: its challenge session.
    pub challenge: Option<String>,
    /// A wrong code may be tried again on the same step (local); Cognito's challenge sessions
    /// are single use, so a wrong code means starting again from the password.
    pub retry: bool,
}

/// Where a sign-in stands after one step.
#[derive(Debug)]
pub enum Step {
    /// Signed in. `mfa`: a second factor was passed. `tokens`: the provider's, kept encrypted
    /// in the server-side session and refreshed there.
    Done {
        user: UserId,
        mfa: bool,
        tokens: Option<Box<Tokens>>,
    },
    /// A TOTP or recovery code is needed next.
    SecondFactor(Pending),
    /// The provider's temporary password must be replaced first.
    NewPassword(Pending),
}

#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Password sign-in for a staff or a member account.
    async fn sign_in(
        &self,
        kind: Kind,
        email: &str,
        password: Phi<String>,
        now: i64,
    ) -> Result<Step, IdentityError>;
    /// The second factor: a TOTP code, or a recovery code where the provider has them.
    async fn second_factor(
        &self,
        pending: &Pending,
        code: &str,
        now: i64,
    ) -> Result<Step, IdentityError>;
    /// Replaces a temporary password during sign-in.
    async fn new_password(
        &self,
        pending: &Pending,
        password: &str,
        now: i64,
    ) -> Result<Step, IdentityError>;
    /// Credentials for a new member account; `true` when an emailed code must confirm them.
    async fn new_member(
        &self,
        email: &str,
        password: Phi<String>,
    ) -> Result<(NewCredentials, bool), IdentityError>;
    /// The code emailed at sign-up; a wrong or spent one is `Refused`.
    async fn confirm_member(&self, email: &str, code: &str, now: i64) -> Result<(), IdentityError>;
    /// A fresh sign-up code for an unconfirmed account (nothing for any other address).
    async fn resend_member_code(&self, email: &str, now: i64) -> Result<(), IdentityError>;
    /// A member's forgotten password: a one-time code to the account's own email (local: through
    /// the outbox, `accounts::codes`; Cognito: its ForgotPassword flow). Nothing tells whether
    /// the account exists.
    async fn member_forgot_password(&self, email: &str, now: i64) -> Result<(), IdentityError>;
    /// Sets a member's new password with that code and ends every session from before; a wrong,
    /// spent or expired code is `Refused`.
    async fn member_reset_password(
        &self,
        email: &str,
        code: &str,
        password: Phi<String>,
        now: i64,
    ) -> Result<(), IdentityError>;
    /// Removes credentials made by `new_member` whose local account could not be saved.
    async fn undo_new_member(&self, email: &str, credentials: &NewCredentials);
    /// Fresh tokens when these are due; `Refused` once the provider ended the session.
    async fn refresh(&self, tokens: &Tokens, now: i64) -> Result<Tokens, IdentityError>;
    /// Revokes what the provider issued (refresh tokens), so every other session of the user
    /// fails at its next refresh. The portal's own sessions are revoked by the caller.
    async fn sign_out_everywhere(&self, email: &str) -> Result<(), IdentityError>;
    /// Whether staff can reset a forgotten password themselves (an emailed code).
    fn offers_reset(&self) -> bool;
    /// Emails a reset code; the same answer whether or not the account exists.
    async fn forgot_password(&self, email: &str) -> Result<(), IdentityError>;
    /// Sets a new password with the emailed code. Clears the portal's must-reset flag and ends
    /// every session from before.
    async fn reset_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
        now: i64,
    ) -> Result<(), IdentityError>;
    /// The operator's forced reset (`users reset`): the portal refuses sign-in until it is done.
    /// Local accounts get a new one-time set-up link (returned, and emailed to the account with
    /// `email_link_from`, the portal's public address).
    async fn force_reset(
        &self,
        email: &str,
        email_link_from: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, IdentityError>;
}

/// Accounts in our own database.
pub struct LocalIdentity {
    db: Db,
    crypto: Arc<FieldCrypto>,
}

impl LocalIdentity {
    pub fn new(db: Db, crypto: Arc<FieldCrypto>) -> Self {
        LocalIdentity { db, crypto }
    }
}

#[async_trait]
impl IdentityProvider for LocalIdentity {
    async fn sign_in(
        &self,
        kind: Kind,
        email: &str,
        password: Phi<String>,
        _now: i64,
    ) -> Result<Step, IdentityError> {
        let user = match accounts::verify_credentials(&self.db, &self.crypto, kind, email, password)
            .await
        {
            Ok(u) => u,
            Err(AccountError::Invalid) => return Err(IdentityError::Refused),
            Err(AccountError::Unconfirmed) => return Err(IdentityError::Unconfirmed),
            Err(e) => return Err(e.into()),
        };
        Ok(match kind {
            // Staff always continue to their TOTP (or a recovery code).
            Kind::Staff => Step::SecondFactor(Pending {
                email: accounts::normalize_email(email),
                user: Some(user.to_string()),
                challenge: None,
                retry: true,
            }),
            Kind::Member => Step::Done {
                user,
                mfa: false,
                tokens: None,
            },
        })
    }

    async fn second_factor(
        &self,
        pending: &Pending,
        code: &str,
        now: i64,
    ) -> Result<Step, IdentityError> {
        let user = UserId::from_db(pending.user.clone().ok_or(IdentityError::Refused)?);
        // The account may have been disabled or reset since the password step.
        let usable = accounts::load(&self.db, &user, now)
            .await?
            .is_some_and(|a| a.kind == Kind::Staff && !a.disabled && !a.must_reset);
        if !usable {
            return Err(IdentityError::Ended);
        }
        let ok = accounts::check_totp(&self.db, &self.crypto, &user, code, now).await?
            || accounts::use_recovery_code(&self.db, &user, code, now).await?;
        if !ok {
            return Err(IdentityError::Refused);
        }
        Ok(Step::Done {
            user,
            mfa: true,
            tokens: None,
        })
    }

    async fn new_password(&self, _: &Pending, _: &str, _: i64) -> Result<Step, IdentityError> {
        // Local staff set their password on the one-time set-up page instead.
        Err(IdentityError::Unsupported)
    }

    async fn new_member(
        &self,
        _email: &str,
        password: Phi<String>,
    ) -> Result<(NewCredentials, bool), IdentityError> {
        // Hashed whether or not the address is free (found at `create_member`), so the two
        // answers take the same time. The portal emails the code (`accounts::confirm`).
        let password_hash = accounts::hash_password(password).await?;
        Ok((NewCredentials::Local { password_hash }, true))
    }

    async fn confirm_member(&self, email: &str, code: &str, now: i64) -> Result<(), IdentityError> {
        match accounts::confirm_email(&self.db, &self.crypto, email, code, now).await? {
            Some(_) => Ok(()),
            None => Err(IdentityError::Refused),
        }
    }

    async fn resend_member_code(&self, email: &str, now: i64) -> Result<(), IdentityError> {
        Ok(accounts::resend_confirm_code(&self.db, &self.crypto, email, now).await?)
    }

    async fn member_forgot_password(&self, email: &str, now: i64) -> Result<(), IdentityError> {
        Ok(accounts::send_reset_code(&self.db, &self.crypto, email, now).await?)
    }

    async fn member_reset_password(
        &self,
        email: &str,
        code: &str,
        password: Phi<String>,
        now: i64,
    ) -> Result<(), IdentityError> {
        // The password is checked (and hashed) first: a weak one must not spend the code.
        let hash = accounts::hash_password(password).await?;
        let Some(user) =
            accounts::redeem_reset_code(&self.db, &self.crypto, email, code, now).await?
        else {
            return Err(IdentityError::Refused);
        };
        accounts::set_member_password(&self.db, &user, &hash).await?;
        accounts::revoke_sessions(&self.db, &user, now).await?;
        Ok(())
    }

    async fn undo_new_member(&self, _: &str, _: &NewCredentials) {}

    async fn refresh(&self, tokens: &Tokens, _: i64) -> Result<Tokens, IdentityError> {
        Ok(tokens.clone())
    }

    async fn sign_out_everywhere(&self, _: &str) -> Result<(), IdentityError> {
        // Nothing issued outside the portal's own sessions.
        Ok(())
    }

    fn offers_reset(&self) -> bool {
        false
    }

    async fn forgot_password(&self, _: &str) -> Result<(), IdentityError> {
        // No mail is sent from here: an administrator issues a new set-up link (`users reset`).
        Err(IdentityError::Unsupported)
    }

    async fn reset_password(&self, _: &str, _: &str, _: &str, _: i64) -> Result<(), IdentityError> {
        Err(IdentityError::Unsupported)
    }

    async fn force_reset(
        &self,
        email: &str,
        email_link_from: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, IdentityError> {
        Ok(accounts::force_reset(&self.db, &self.crypto, email, email_link_from, now).await?)
    }
}

/// AWS Cognito: it holds the passwords; the portal keeps a local record per Cognito `sub`.
pub struct CognitoIdentity {
    db: Db,
    crypto: Arc<FieldCrypto>,
    cognito: CognitoProvider,
}

impl CognitoIdentity {
    pub fn new(db: Db, crypto: Arc<FieldCrypto>, cognito: CognitoProvider) -> Self {
        CognitoIdentity {
            db,
            crypto,
            cognito,
        }
    }

    /// Turns Cognito's answer into a step: challenges for staff, or the local account the
    /// verified token's subject names.
    async fn finish(
        &self,
        kind: Kind,
        email: &str,
        step: cognito::Step,
        mfa: bool,
        now: i64,
    ) -> Result<Step, IdentityError> {
        let pending = |challenge: String| Pending {
            email: email.to_owned(),
            user: None,
            challenge: Some(challenge),
            retry: false,
        };
        match (step, kind) {
            // Members made by self sign-up set their own password and have no TOTP.
            (
                cognito::Step::NewPasswordRequired { .. } | cognito::Step::TotpRequired { .. },
                Kind::Member,
            ) => Err(IdentityError::Refused),
            (cognito::Step::NewPasswordRequired { session }, Kind::Staff) => {
                Ok(Step::NewPassword(pending(session)))
            }
            (cognito::Step::TotpRequired { session }, Kind::Staff) => {
                Ok(Step::SecondFactor(pending(session)))
            }
            (cognito::Step::Done { tokens, claims }, Kind::Staff) => {
                let grants = cognito::grants_from_groups(&claims.groups);
                let who = claims.email.clone().unwrap_or_else(|| email.to_owned());
                let (user, usable) = match accounts::upsert_external(
                    &self.db,
                    &self.crypto,
                    &claims.sub,
                    &who,
                    &grants,
                    now,
                )
                .await
                {
                    Ok(u) => u,
                    Err(AccountError::Bad(why)) => {
                        tracing::warn!(why, "Cognito sign-in refused");
                        return Err(IdentityError::Refused);
                    }
                    Err(e) => return Err(e.into()),
                };
                if !usable {
                    // Disabled here, or a forced reset not yet done: Cognito's tokens don't
                    // override the portal.
                    return Err(IdentityError::ResetRequired);
                }
                Ok(Step::Done {
                    user,
                    mfa,
                    tokens: Some(tokens),
                })
            }
            (cognito::Step::Done { tokens, claims }, Kind::Member) => {
                let user = accounts::member_by_subject(&self.db, &claims.sub)
                    .await?
                    .ok_or(IdentityError::Refused)?;
                // Disabled here, or a forced reset not yet done: refused like a wrong password
                // (as a local member is), whatever Cognito says.
                let usable = accounts::load(&self.db, &user, now)
                    .await?
                    .is_some_and(|a| !a.disabled && !a.must_reset);
                if !usable {
                    return Err(IdentityError::Refused);
                }
                Ok(Step::Done {
                    user,
                    mfa: false,
                    tokens: Some(tokens),
                })
            }
        }
    }
}

#[async_trait]
impl IdentityProvider for CognitoIdentity {
    async fn sign_in(
        &self,
        kind: Kind,
        email: &str,
        password: Phi<String>,
        now: i64,
    ) -> Result<Step, IdentityError> {
        let email = accounts::normalize_email(email);
        let step = self.cognito.sign_in(&email, password.expose(), now).await?;
        self.finish(kind, &email, step, false, now).await
    }

    async fn second_factor(
        &self,
        pending: &Pending,
        code: &str,
        now: i64,
    ) -> Result<Step, IdentityError> {
        let challenge = pending.challenge.as_deref().ok_or(IdentityError::Refused)?;
        let step = self
            .cognito
            .totp(challenge, &pending.email, code, now)
            .await?;
        self.finish(Kind::Staff, &pending.email, step, true, now)
            .await
    }

    async fn new_password(
        &self,
        pending: &Pending,
        password: &str,
        now: i64,
    ) -> Result<Step, IdentityError> {
        let challenge = pending.challenge.as_deref().ok_or(IdentityError::Refused)?;
        let step = self
            .cognito
            .new_password(challenge, &pending.email, password, now)
            .await?;
        self.finish(Kind::Staff, &pending.email, step, false, now)
            .await
    }

    async fn new_member(
        &self,
        email: &str,
        password: Phi<String>,
    ) -> Result<(NewCredentials, bool), IdentityError> {
        // Checked here first, so a refused email leaves no Cognito user behind.
        if accounts::email_taken(&self.db, &self.crypto, email).await? {
            return Err(IdentityError::EmailTaken);
        }
        let u = self
            .cognito
            .sign_up(&accounts::normalize_email(email), password.expose())
            .await?;
        Ok((NewCredentials::External { subject: u.sub }, !u.confirmed))
    }

    async fn confirm_member(&self, email: &str, code: &str, _: i64) -> Result<(), IdentityError> {
        Ok(self.cognito.confirm_sign_up(email, code).await?)
    }

    async fn resend_member_code(&self, email: &str, _: i64) -> Result<(), IdentityError> {
        Ok(self.cognito.resend_code(email).await?)
    }

    async fn member_forgot_password(&self, email: &str, _now: i64) -> Result<(), IdentityError> {
        Ok(self
            .cognito
            .forgot_password(&accounts::normalize_email(email))
            .await?)
    }

    async fn member_reset_password(
        &self,
        email: &str,
        code: &str,
        password: Phi<String>,
        now: i64,
    ) -> Result<(), IdentityError> {
        let email = accounts::normalize_email(email);
        self.reset_password(&email, code, password.expose(), now)
            .await
    }

    async fn undo_new_member(&self, email: &str, credentials: &NewCredentials) {
        if let NewCredentials::External { .. } = credentials {
            let email = accounts::normalize_email(email);
            if let Err(e) = self.cognito.delete_user(&email).await {
                tracing::warn!(error = %e, "could not remove an orphaned Cognito sign-up");
            }
        }
    }

    async fn refresh(&self, tokens: &Tokens, now: i64) -> Result<Tokens, IdentityError> {
        Ok(self.cognito.refresh(tokens, now).await?)
    }

    async fn sign_out_everywhere(&self, email: &str) -> Result<(), IdentityError> {
        Ok(self
            .cognito
            .global_sign_out(&accounts::normalize_email(email))
            .await?)
    }

    fn offers_reset(&self) -> bool {
        true
    }

    async fn forgot_password(&self, email: &str) -> Result<(), IdentityError> {
        Ok(self.cognito.forgot_password(email).await?)
    }

    async fn reset_password(
        &self,
        email: &str,
        code: &str,
        password: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        self.cognito
            .confirm_forgot_password(email, code, password)
            .await?;
        if let Some(sub) = self.cognito.subject_of(email).await? {
            accounts::clear_must_reset(&self.db, &sub).await?;
            // Whoever knew the old password is out: the portal's sessions and Cognito's
            // refresh tokens from before the reset stop working.
            accounts::revoke_sessions_by_subject(&self.db, &sub, now).await?;
            self.cognito.global_sign_out(email).await?;
        }
        Ok(())
    }

    async fn force_reset(
        &self,
        email: &str,
        _: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, IdentityError> {
        accounts::force_reset(&self.db, &self.crypto, email, None, now).await?;
        let email = accounts::normalize_email(email);
        self.cognito.reset_password(&email).await?;
        self.cognito.global_sign_out(&email).await?;
        // Cognito emails its own reset code; no set-up link from us.
        Ok(None)
    }
}
