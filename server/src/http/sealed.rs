//! Values the session record keeps sealed under the platform's keys (session records are plain
//! JSON in the database): Cognito tokens bound to their account, a pending sign-up's email, the
//! name of the patient a view-as session shows.

use super::error::{AppError, Result};
use super::session::Sess;
use super::AppState;
use crate::accounts;
use crate::crypto::FieldAad;
use crate::identity::IdentityError;
use crate::ids::UserId;
use base64::Engine;

fn tokens_aad(user: &UserId) -> FieldAad<'_> {
    FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "cognito_tokens",
        row: user.as_str(),
    }
}

fn pending_aad() -> FieldAad<'static> {
    FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "confirm_email",
        row: "pending-sign-up",
    }
}

async fn seal(state: &AppState, aad: FieldAad<'_>, plain: &[u8]) -> Result<String> {
    let ct = state.crypto.encrypt(aad, plain).await?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ct))
}

async fn open(state: &AppState, aad: FieldAad<'_>, sealed: &str) -> Result<Vec<u8>> {
    let ct = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(state.crypto.decrypt(aad, &ct).await?.to_vec())
}

/// Keeps Cognito tokens in the session, encrypted and bound to the account, so a copy of the
/// sessions table holds no usable refresh token.
pub async fn store_tokens(
    state: &AppState,
    session: &Sess,
    user: &UserId,
    tokens: &crate::cognito::Tokens,
) -> Result<()> {
    let json = serde_json::to_vec(tokens).map_err(|e| AppError::Internal(e.into()))?;
    let sealed = seal(state, tokens_aad(user), &json).await?;
    session.update(|d| d.sealed_tokens = Some(sealed)).await?;
    Ok(())
}

async fn load_tokens(
    state: &AppState,
    session: &Sess,
    user: &UserId,
) -> Result<Option<crate::cognito::Tokens>> {
    let Some(sealed) = session.data().await?.sealed_tokens else {
        return Ok(None);
    };
    let json = open(state, tokens_aad(user), &sealed).await?;
    Ok(Some(
        serde_json::from_slice(&json).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

/// With a provider that issues tokens (Cognito), refreshes them when due; false once the provider
/// refuses (global sign-out, disabled user): the caller ends the session.
pub async fn tokens_still_valid(state: &AppState, session: &Sess, user: &UserId) -> Result<bool> {
    let now = state.clock.now();
    if let Some(tokens) = load_tokens(state, session, user).await? {
        if now >= tokens.expires_at - 60 {
            match state.identity.refresh(&tokens, now).await {
                Ok(fresh) => store_tokens(state, session, user, &fresh).await?,
                Err(IdentityError::Unavailable(e)) => return Err(AppError::Unavailable(e)),
                Err(_) => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Remembers the email of a sign-up waiting for its emailed code.
pub async fn set_pending_email(state: &AppState, session: &Sess, email: &str) -> Result<()> {
    let sealed = seal(state, pending_aad(), email.as_bytes()).await?;
    session
        .update(|d| d.sealed_confirm_email = Some(sealed))
        .await?;
    Ok(())
}

/// The email of a sign-up waiting for its code, if any.
pub async fn pending_email(state: &AppState, session: &Sess) -> Result<Option<String>> {
    let Some(sealed) = session.data().await?.sealed_confirm_email else {
        return Ok(None);
    };
    let plain = open(state, pending_aad(), &sealed).await?;
    Ok(Some(
        String::from_utf8(plain).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

fn reset_aad() -> FieldAad<'static> {
    FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "reset_email",
        row: "member-reset",
    }
}

/// Remembers the email a member's reset code was asked for (`None` forgets it).
pub async fn set_reset_email(state: &AppState, session: &Sess, email: Option<&str>) -> Result<()> {
    let sealed = match email {
        Some(e) => Some(seal(state, reset_aad(), e.as_bytes()).await?),
        None => None,
    };
    session.update(|d| d.sealed_reset_email = sealed).await?;
    Ok(())
}

/// The email a member's reset code was asked for, if any.
pub async fn reset_email(state: &AppState, session: &Sess) -> Result<Option<String>> {
    let Some(sealed) = session.data().await?.sealed_reset_email else {
        return Ok(None);
    };
    let plain = open(state, reset_aad(), &sealed).await?;
    Ok(Some(
        String::from_utf8(plain).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

fn view_as_name_aad(view: &str) -> FieldAad<'_> {
    FieldAad {
        tenant: accounts::platform(),
        table: "sessions",
        column: "view_as_patient_name",
        row: view,
    }
}

/// Seals the name of the patient a view-as session shows, for its banner, bound to that view.
pub async fn seal_view_as_name(state: &AppState, view: &str, name: &str) -> Result<String> {
    seal(state, view_as_name_aad(view), name.as_bytes()).await
}

/// The banner's patient name, as sealed by `seal_view_as_name` for the same view.
pub async fn open_view_as_name(state: &AppState, view: &str, sealed: &str) -> Result<String> {
    let plain = open(state, view_as_name_aad(view), sealed).await?;
    String::from_utf8(plain).map_err(|e| AppError::Internal(e.into()))
}
