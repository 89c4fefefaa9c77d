//! Who is calling the API: the practice whose live import key is presented as
//! `Authorization: Bearer ppk_…`. Anything else is a JSON 401 with `WWW-Authenticate: Bearer`,
//! and a presented key that is refused is audited (by its id when it is a revoked key of ours,
//! never by the key), up to a limit per address, past which the answer is 429.

use super::error;
use crate::apikeys::{self, Scope};
use crate::audit::{self, Outcome};
use crate::http::{AppState, RequestContext};
use crate::ids::TenantId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// A caller the API accepted: its key's id and practice, and the request's context.
pub struct ApiCaller {
    pub key_id: String,
    pub tenant: TenantId,
    pub ctx: RequestContext,
}

/// Longest Authorization value looked at (a key is about 50 characters).
const MAX_AUTHORIZATION: usize = 256;

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(ctx) = parts.extensions.get::<RequestContext>().cloned() else {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "request context missing",
                "",
            ));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| bearer(v.as_bytes()));
        let key = match presented {
            None => {
                return Err(unauthorized(
                    &ctx,
                    "missing_api_key",
                    "send Authorization: Bearer <API key>",
                    None,
                ))
            }
            Some(None) => {
                return Err(unauthorized(
                    &ctx,
                    "invalid_api_key",
                    "the Authorization header must be Bearer <API key>",
                    Some("invalid_request"),
                ))
            }
            Some(Some(k)) => k,
        };
        match apikeys::authenticate(&state.db, &key, Scope::Import, ctx.now).await {
            Ok(Some((key_id, tenant))) => Ok(ApiCaller {
                key_id,
                tenant,
                ctx,
            }),
            Ok(None) => {
                if !refused(state, &ctx, &key).await {
                    let mut res = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_refused_keys",
                        "too many refused API keys from this address: wait, then send a live key",
                        &ctx.request_id,
                    );
                    res.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(apikeys::REFUSAL_WINDOW_SECS),
                    );
                    return Err(res);
                }
                Err(unauthorized(
                    &ctx,
                    "invalid_api_key",
                    "the API key is unknown or revoked",
                    Some("invalid_token"),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "api: could not check the key");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the key could not be checked: retry later",
                    &ctx.request_id,
                ))
            }
        }
    }
}

/// The credentials of `Bearer <credentials>` (scheme case-insensitive); `None` for another scheme
/// or a malformed value.
fn bearer(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_AUTHORIZATION {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = rest.trim();
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_owned())
}

fn unauthorized(
    ctx: &RequestContext,
    code: &str,
    message: &str,
    bearer_error: Option<&str>,
) -> Response {
    let mut res = error(StatusCode::UNAUTHORIZED, code, message, &ctx.request_id);
    let challenge = match bearer_error {
        Some(e) => format!("Bearer realm=\"patriotpay\", error=\"{e}\""),
        None => "Bearer realm=\"patriotpay\"".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// Records and audits a refused key; `false` when the address is over its refusal limit
/// (nothing recorded: the caller answers 429). A revoked (or other-scope) key of ours is named by
/// its id and practice, so the practice sees a system still using it; an unknown one by nothing.
async fn refused(state: &AppState, ctx: &RequestContext, key: &str) -> bool {
    let address = crate::limits::address_key(&ctx.address);
    match apikeys::note_refusal(&state.db, &address, ctx.now).await {
        Ok(true) => {}
        Ok(false) => return false,
        // The limit could not be read: refuse as usual, and audit it.
        Err(e) => tracing::error!(error = %e, "api: could not count refused keys"),
    }
    let known: Option<(String, String)> =
        match sqlx::query_as("SELECT id, tenant_id FROM api_keys WHERE key_hash = $1")
            .bind(crate::crypto::token_hash(key))
            .fetch_optional(state.db.pool())
            .await
        {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "api: could not look up a refused key");
                None
            }
        };
    let (key_id, tenant) = match known {
        Some((id, t)) => (Some(id), Some(TenantId::from_db(t))),
        None => (None, None),
    };
    let actor = ctx.actor(format!("apikey:{}", key_id.as_deref().unwrap_or("unknown")));
    let recorded = state
        .audit
        .record(audit::Event {
            actor: &actor,
            tenant: tenant.as_ref(),
            patient: None,
            action: "apikey.refused",
            resource: key_id.as_deref(),
            outcome: Outcome::Denied,
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "api: could not audit a refused key");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_a_bearer_credential_is_taken() {
        assert_eq!(bearer(b"Bearer ppk_abc").as_deref(), Some("ppk_abc"));
        assert_eq!(bearer(b"bearer   ppk_abc ").as_deref(), Some("ppk_abc"));
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"ppk_abc",
            b"Bearer \xff",
        ] {
            assert_eq!(bearer(bad), None, "{bad:?}");
        }
        assert_eq!(bearer(&[b'a'; 300]), None);
    }
}
