//! The HTTP layer's error type: a status and a short code for the user, details only in the log.

use crate::accounts::AccountError;
use crate::identity::IdentityError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What every handler and HTTP helper returns.
pub type Result<T> = std::result::Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("bad request")]
    BadRequest,
    /// A body over its limit (the statement upload's, in practice).
    #[error("request too large")]
    TooLarge,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Our own capacity is spent (password checks queued to their bound): try again shortly.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    #[error("internal: {0:#}")]
    Internal(anyhow::Error),
}

/// Marks a response whose body the error-page middleware should render.
#[derive(Clone, Copy, Debug)]
pub struct ErrorPage;

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::BadRequest => StatusCode::BAD_REQUEST,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Error texts of our own layers carry no PHI; they go to the log with the request id
            // that the request span adds.
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "request failed"),
            AppError::Unavailable(e) => tracing::warn!(error = %e, "dependency unavailable"),
            _ => {}
        }
        let mut res = status.into_response();
        if let AppError::TooManyRequests { retry_after_secs }
        | AppError::Busy { retry_after_secs } = self
        {
            if let Ok(v) = retry_after_secs.to_string().parse() {
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        res.extensions_mut().insert(ErrorPage);
        res
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                AppError::Unavailable(format!("database: {e}"))
            }
            e => AppError::Internal(e.into()),
        }
    }
}

impl From<crate::crypto::CryptoError> for AppError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        match e {
            crate::crypto::CryptoError::Unavailable(m) => {
                AppError::Unavailable(format!("key provider: {m}"))
            }
            crate::crypto::CryptoError::Db(d) => d.into(),
            e => AppError::Internal(e.into()),
        }
    }
}

impl From<crate::messages::MessageError> for AppError {
    fn from(e: crate::messages::MessageError) -> Self {
        match e {
            crate::messages::MessageError::Db(d) => d.into(),
            crate::messages::MessageError::Crypto(c) => c.into(),
        }
    }
}

impl From<crate::billing::BillingError> for AppError {
    fn from(e: crate::billing::BillingError) -> Self {
        match e {
            crate::billing::BillingError::Crypto(c) => c.into(),
            crate::billing::BillingError::Db(d) => d.into(),
            e => AppError::Internal(e.into()),
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(d) => d.into(),
            AccountError::Crypto(c) => c.into(),
            AccountError::Throttled { retry_after_secs } => {
                crate::observe::lockout("sign-in");
                AppError::TooManyRequests { retry_after_secs }
            }
            AccountError::Invalid
            | AccountError::WeakPassword
            | AccountError::Bad(_)
            | AccountError::EmailTaken
            | AccountError::PatientHasAccount
            | AccountError::Unconfirmed
            | AccountError::Gone => AppError::BadRequest,
            AccountError::Hash(h) => AppError::Internal(anyhow::anyhow!("password hashing: {h}")),
            AccountError::Busy => AppError::Busy {
                retry_after_secs: 5,
            },
        }
    }
}

impl From<IdentityError> for AppError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Unavailable(m) => AppError::Unavailable(m),
            IdentityError::Account(a) => a.into(),
            IdentityError::Unsupported => AppError::NotFound,
            e => AppError::Internal(e.into()),
        }
    }
}

/// A refused permit looks like a record that does not exist (another practice's or patient's
/// record must not be told apart from none); a handler that should say 403 maps it itself.
impl From<crate::access::Refused> for AppError {
    fn from(e: crate::access::Refused) -> Self {
        match e {
            crate::access::Refused::Denied(_) => AppError::NotFound,
            crate::access::Refused::Db(d) => d.into(),
        }
    }
}
