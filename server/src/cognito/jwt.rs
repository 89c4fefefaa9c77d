//! Cognito's tokens checked on the server: the pool's JWKS fetched (and fetched again, at most
//! every `REFETCH_AT_MOST_EVERY`, for an unknown key id), RS256 only, issuer, token use,
//! audience or client id, and expiry.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    Id,
    Access,
}

/// The claims we use from a verified token.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    pub token_use: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(rename = "cognito:username", default)]
    pub cognito_username: Option<String>,
    #[serde(rename = "cognito:groups", default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
}

/// Verifies Cognito JWTs against a JWKS fetched from a URL, cached, and refetched (at most once
/// a minute) when a token names an unknown key id.
pub struct JwtVerifier {
    jwks_url: String,
    issuer: String,
    client_id: String,
    http: reqwest::Client,
    keys: RwLock<(Option<JwkSet>, Option<Instant>)>,
    refetch_every: Duration,
}

/// Refetching the JWKS for an unknown key id happens at most this often, so forged tokens with
/// random key ids cannot make us hammer the JWKS endpoint.
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

impl JwtVerifier {
    pub fn new(jwks_url: String, issuer: String, client_id: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            jwks_url,
            issuer,
            client_id,
            http,
            keys: RwLock::new((None, None)),
            refetch_every: REFETCH_AT_MOST_EVERY,
        }
    }

    /// The same, with another minimum interval between JWKS refetches (tests use zero).
    pub fn with_refetch_interval(mut self, every: Duration) -> Self {
        self.refetch_every = every;
        self
    }

    async fn fetch(&self) -> Result<(), CognitoError> {
        let set: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| CognitoError::Unavailable(format!("JWKS: {e}")))?
            .json()
            .await
            .map_err(|e| CognitoError::Unavailable(format!("JWKS body: {e}")))?;
        *self.keys.write().await = (Some(set), Some(Instant::now()));
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, CognitoError> {
        for attempt in 0..2 {
            {
                let keys = self.keys.read().await;
                if let Some(jwk) = keys.0.as_ref().and_then(|s| s.find(kid)) {
                    return DecodingKey::from_jwk(jwk)
                        .map_err(|_| CognitoError::Token("unusable key"));
                }
                let recently = keys.1.is_some_and(|t| t.elapsed() < self.refetch_every);
                if attempt == 1 || (keys.0.is_some() && recently) {
                    return Err(CognitoError::Token("unknown key id"));
                }
            }
            self.fetch().await?;
        }
        Err(CognitoError::Token("unknown key id"))
    }

    /// Checks signature (RS256 only), issuer, expiry, token use, and audience (ID token) or
    /// client id (access token).
    pub async fn verify(&self, token: &str, expected: TokenUse) -> Result<Claims, CognitoError> {
        let header = decode_header(token).map_err(|_| CognitoError::Token("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(CognitoError::Token("algorithm not allowed"));
        }
        let kid = header.kid.ok_or(CognitoError::Token("no key id"))?;
        let key = self.key(&kid).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.leeway = 30;
        match expected {
            TokenUse::Id => {
                v.set_audience(&[&self.client_id]);
                v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            // Access tokens carry no `aud`; their `client_id` is checked below.
            TokenUse::Access => v.validate_aud = false,
        }
        let data = decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind::*;
            CognitoError::Token(match e.kind() {
                ExpiredSignature => "expired",
                InvalidIssuer => "wrong issuer",
                InvalidAudience => "wrong audience",
                MissingRequiredClaim(c) if c == "aud" => "wrong audience",
                InvalidAlgorithm => "algorithm not allowed",
                InvalidSignature => "bad signature",
                _ => "invalid",
            })
        })?;
        let c = data.claims;
        match expected {
            TokenUse::Id if c.token_use != "id" => Err(CognitoError::Token("not an ID token")),
            TokenUse::Access if c.token_use != "access" => {
                Err(CognitoError::Token("not an access token"))
            }
            TokenUse::Access if c.client_id.as_deref() != Some(self.client_id.as_str()) => {
                Err(CognitoError::Token("wrong client"))
            }
            _ => Ok(c),
        }
    }
}
