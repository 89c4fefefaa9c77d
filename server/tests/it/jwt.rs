//! Cognito token verification against a local JWKS endpoint: valid tokens pass; `alg: none`,
//! HS256 signed with the public key, unknown key ids, wrong issuer, wrong audience or client,
//! swapped token use, expired and tampered tokens are refused. Test keys are generated at run
//! time, so no private key lives in the repository.

use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use patriotpay::cognito::{JwtVerifier, TokenUse};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_testpool";
const CLIENT: &str = "testclient123";

struct TestKey {
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: serde_json::Value,
}

fn make_key(kid: &str) -> TestKey {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
    let public = private.to_public_key();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    TestKey {
        private_pem: private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .as_bytes()
            .to_vec(),
        public_pem: public
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
            .into_bytes(),
        jwk: serde_json::json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
            "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be()),
        }),
    }
}

fn claims(token_use: &str, exp_in: i64) -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut c = serde_json::json!({
        "sub": "0f6c5a4e-user", "iss": ISSUER, "token_use": token_use, "exp": now + exp_in, "iat": now,
        "email": "agent@example.org", "cognito:groups": ["support-agent@ten_00000000000000000000000000000001"],
    });
    if token_use == "id" {
        c["aud"] = CLIENT.into();
    } else {
        c["client_id"] = CLIENT.into();
    }
    c
}

fn sign(key: &TestKey, kid: &str, claims: &serde_json::Value) -> String {
    let mut h = Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(&key.private_pem).expect("pem"),
    )
    .expect("sign")
}

/// Serves whatever JWKS is in `doc`, counting fetches.
async fn jwks_server(doc: Arc<Mutex<serde_json::Value>>, hits: Arc<Mutex<u32>>) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let (doc, hits) = (doc.clone(), hits.clone());
            async move {
                *hits.lock().unwrap() += 1;
                axum::Json(doc.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn tokens_are_verified_strictly() {
    let a = make_key("test-a");
    let b = make_key("test-b");
    let doc = Arc::new(Mutex::new(serde_json::json!({"keys": [a.jwk.clone()]})));
    let hits = Arc::new(Mutex::new(0));
    let url = jwks_server(doc.clone(), hits.clone()).await;
    let v =
        JwtVerifier::new(url, ISSUER.into(), CLIENT.into()).with_refetch_interval(Duration::ZERO);

    let id = sign(&a, "test-a", &claims("id", 3600));
    let c = v.verify(&id, TokenUse::Id).await.expect("valid ID token");
    assert_eq!(
        c.groups,
        vec!["support-agent@ten_00000000000000000000000000000001".to_owned()]
    );
    let access = sign(&a, "test-a", &claims("access", 3600));
    v.verify(&access, TokenUse::Access)
        .await
        .expect("valid access token");
    assert_eq!(*hits.lock().unwrap(), 1, "keys are cached");

    let refused =
        |r: Result<patriotpay::cognito::Claims, patriotpay::cognito::CognitoError>| match r {
            Err(patriotpay::cognito::CognitoError::Token(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
    // Swapped token use.
    assert_eq!(
        refused(v.verify(&id, TokenUse::Access).await),
        "not an access token"
    );
    assert_eq!(
        refused(v.verify(&access, TokenUse::Id).await),
        "wrong audience"
    );
    // alg: none.
    let b64 = |j: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "kid": "test-a"})),
        b64(claims("id", 3600))
    );
    assert!(v.verify(&none, TokenUse::Id).await.is_err());
    // HS256 with the RSA public key as the HMAC secret (algorithm confusion).
    let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("test-a".into());
    let confused = encode(
        &h,
        &claims("id", 3600),
        &EncodingKey::from_secret(&a.public_pem),
    )
    .expect("sign");
    assert_eq!(
        refused(v.verify(&confused, TokenUse::Id).await),
        "algorithm not allowed"
    );
    // Wrong issuer, wrong audience, wrong client, expired.
    let mut c = claims("id", 3600);
    c["iss"] = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other".into();
    assert_eq!(
        refused(v.verify(&sign(&a, "test-a", &c), TokenUse::Id).await),
        "wrong issuer"
    );
    let mut c = claims("id", 3600);
    c["aud"] = "someoneelse".into();
    assert_eq!(
        refused(v.verify(&sign(&a, "test-a", &c), TokenUse::Id).await),
        "wrong audience"
    );
    let mut c = claims("access", 3600);
    c["client_id"] = "someoneelse".into();
    assert_eq!(
        refused(v.verify(&sign(&a, "test-a", &c), TokenUse::Access).await),
        "wrong client"
    );
    assert_eq!(
        refused(
            v.verify(&sign(&a, "test-a", &claims("id", -120)), TokenUse::Id)
                .await
        ),
        "expired"
    );
    // Signed by another key under a known key id: bad signature.
    assert_eq!(
        refused(
            v.verify(&sign(&b, "test-a", &claims("id", 3600)), TokenUse::Id)
                .await
        ),
        "bad signature"
    );
    // Tampered payload.
    let mut parts: Vec<String> = id.split('.').map(str::to_owned).collect();
    let mut forged = claims("id", 3600);
    forged["cognito:groups"] = serde_json::json!(["platform-admin"]);
    parts[1] = b64(forged);
    assert!(v.verify(&parts.join("."), TokenUse::Id).await.is_err());

    // Key rotation: a new key id triggers one refetch and then verifies.
    let fetched = *hits.lock().unwrap();
    *doc.lock().unwrap() = serde_json::json!({"keys": [a.jwk.clone(), b.jwk.clone()]});
    v.verify(&sign(&b, "test-b", &claims("id", 3600)), TokenUse::Id)
        .await
        .expect("rotated key");
    assert_eq!(*hits.lock().unwrap(), fetched + 1);
    // An unknown key id is refused after a refetch.
    assert_eq!(
        refused(
            v.verify(&sign(&b, "nope", &claims("id", 3600)), TokenUse::Id)
                .await
        ),
        "unknown key id"
    );
}

#[tokio::test]
async fn unknown_key_ids_cannot_force_a_refetch_storm() {
    let a = make_key("test-a");
    let doc = Arc::new(Mutex::new(serde_json::json!({"keys": [a.jwk.clone()]})));
    let hits = Arc::new(Mutex::new(0));
    let url = jwks_server(doc, hits.clone()).await;
    let v = JwtVerifier::new(url, ISSUER.into(), CLIENT.into());
    v.verify(&sign(&a, "test-a", &claims("id", 3600)), TokenUse::Id)
        .await
        .expect("valid");
    for i in 0..20 {
        assert!(v
            .verify(
                &sign(&a, &format!("random-{i}"), &claims("id", 3600)),
                TokenUse::Id
            )
            .await
            .is_err());
    }
    assert_eq!(
        *hits.lock().unwrap(),
        1,
        "no refetch within the minimum interval"
    );
}
