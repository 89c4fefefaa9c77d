//! The AWS KMS key provider against moto server: data keys, encryption context, rotation,
//! re-wrap, re-encryption, the plaintext-key cache, and failing closed when KMS is down.
//! Needs `PATRIOTPAY_TEST_MOTO_URL` (a running `moto_server`), `PATRIOTPAY_MOTO_SERVER` (its
//! binary, for the outage test) and static AWS test credentials in the environment. Also audit
//! anchors MACed with a KMS HMAC key.

use crate::common::{location, moto_aws_config, moto_url, Backend, Browser, TestApp};
use patriotpay::config::KeyProviderKind;
use patriotpay::crypto::{
    CryptoError, KeyContext, KeyProvider, KmsKeyProvider, KmsSettings, PURPOSE_FIELD,
};
use reqwest::StatusCode;

/// A new symmetric key in moto; keys are unique per test, so tests share one moto.
async fn create_key(endpoint: &str) -> String {
    let conf = moto_aws_config(endpoint).await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let out = kms
        .create_key()
        .description("patriotpay test")
        .send()
        .await
        .expect("CreateKey on moto");
    out.key_metadata()
        .expect("metadata")
        .arn()
        .expect("arn")
        .to_owned()
}

async fn provider(endpoint: &str, key_id: &str) -> KmsKeyProvider {
    KmsKeyProvider::connect(&KmsSettings {
        key_id: key_id.to_owned(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.to_owned()),
        mac_key_id: None,
    })
    .await
}

fn kms_config(endpoint: String, key: String) -> impl FnOnce(&mut patriotpay::config::Config) {
    move |cfg| {
        cfg.key_provider = KeyProviderKind::AwsKms;
        cfg.kms_key_id = Some(key);
        cfg.aws_region = Some("us-east-1".into());
        cfg.kms_endpoint_url = Some(endpoint);
    }
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn generate_decrypt_and_context() {
    let url = moto_url();
    let key = create_key(&url).await;
    let p = provider(&url, &key).await;
    p.health().await.expect("DescribeKey");
    let ctx = KeyContext {
        tenant: "ten_a".into(),
        purpose: PURPOSE_FIELD,
    };
    let (dk, wrapped, key_id) = p.generate_data_key(&ctx).await.expect("GenerateDataKey");
    assert_eq!(key_id, key, "the ARN is stored");
    assert!(wrapped.len() > 32, "a KMS ciphertext blob, not the key");
    let back = p
        .decrypt_data_key(&key_id, &wrapped, &ctx)
        .await
        .expect("Decrypt");
    assert!(back == dk);
    // Another tenant's context, or another purpose: refused.
    for wrong in [
        KeyContext {
            tenant: "ten_b".into(),
            purpose: PURPOSE_FIELD,
        },
        KeyContext {
            tenant: "ten_a".into(),
            purpose: patriotpay::crypto::PURPOSE_INDEX,
        },
    ] {
        let r = p.decrypt_data_key(&key_id, &wrapped, &wrong).await;
        assert!(
            matches!(r, Err(CryptoError::Integrity)),
            "{wrong:?}: {:?}",
            r.err()
        );
    }
    // A flipped byte in the wrapped key: refused.
    let mut bad = wrapped.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(p.decrypt_data_key(&key_id, &bad, &ctx).await.is_err());
}

/// Patient 1's identity check and statement, proving PHI decrypts.
async fn reads_statement(app: &TestApp) {
    let b = Browser::new(app);
    b.verified_patient1(app).await;
    assert!(b
        .page("/statement")
        .await
        .contains("Comprehensive metabolic panel"));
}

async fn rotate_rewrap_reencrypt(backend: Backend) {
    let url = moto_url();
    let key1 = create_key(&url).await;
    let app = TestApp::start_with(backend, kms_config(url.clone(), key1.clone())).await;
    let crypto = app.state().crypto.clone();
    reads_statement(&app).await;

    // Rotate: a new version for new writes; old values still read.
    let rotated = patriotpay::keys::rotate(app.db(), &crypto, Some(&app.tenant), false)
        .await
        .expect("rotate");
    assert_eq!(rotated.rotated, vec![(app.tenant.as_str().to_owned(), 2)]);
    crypto.flush_cache();
    reads_statement(&app).await;
    let before = patriotpay::keys::status(app.db()).await.expect("status");
    let v1 = before
        .iter()
        .find(|k| k.purpose == PURPOSE_FIELD && k.version == 1)
        .expect("v1");
    // Six encrypted fields per demo patient, two per statement line.
    let patients = patriotpay::demo::PATIENTS.len() as u64;
    let lines: u64 = patriotpay::demo::PATIENTS
        .iter()
        .map(|p| p.lines.len() as u64)
        .sum();
    let values = patients * 6 + lines * 2;
    assert_eq!(v1.values, values, "every patient and line field under v1");
    assert_eq!(v1.key_id, key1);

    // Re-encrypt: a dry run changes nothing; the real run moves every value to v2; a re-run
    // finds nothing left to do.
    let dry = patriotpay::keys::reencrypt(app.db(), &crypto, None, 4, true)
        .await
        .expect("dry run");
    assert_eq!(dry.values_reencrypted, values);
    assert_eq!(
        patriotpay::keys::status(app.db()).await.expect("status"),
        before
    );
    let real = patriotpay::keys::reencrypt(app.db(), &crypto, None, 4, false)
        .await
        .expect("reencrypt");
    assert_eq!(
        (real.values_reencrypted, real.rows),
        (values, patients + lines)
    );
    let again = patriotpay::keys::reencrypt(app.db(), &crypto, None, 4, false)
        .await
        .expect("re-run");
    assert_eq!(
        (again.values_reencrypted, again.values_current),
        (0, values)
    );
    let after = patriotpay::keys::status(app.db()).await.expect("status");
    let count = |v: u32| {
        after
            .iter()
            .find(|k| k.purpose == PURPOSE_FIELD && k.version == v)
            .map(|k| k.values)
    };
    assert_eq!((count(1), count(2)), (Some(0), Some(values)));
    crypto.flush_cache();
    reads_statement(&app).await;

    // Re-wrap under a second KMS key, as after a compromise of the first.
    let key2 = create_key(&url).await;
    let dry = patriotpay::keys::rewrap(app.db(), &crypto, &key2, true)
        .await
        .expect("dry rewrap");
    assert_eq!(dry.rewrapped, 3, "field v1, field v2, blind-index v1");
    assert!(patriotpay::keys::status(app.db())
        .await
        .expect("status")
        .iter()
        .all(|k| k.key_id == key1));
    let done = patriotpay::keys::rewrap(app.db(), &crypto, &key2, false)
        .await
        .expect("rewrap");
    assert_eq!((done.examined, done.rewrapped), (3, 3));
    assert!(patriotpay::keys::status(app.db())
        .await
        .expect("status")
        .iter()
        .all(|k| k.key_id == key2));
    let again = patriotpay::keys::rewrap(app.db(), &crypto, &key2, false)
        .await
        .expect("rewrap re-run");
    assert_eq!(again.already_under_target, 3);
    crypto.flush_cache();
    reads_statement(&app).await;
    // The wrapped keys now need key 2: unwrapping one with key 1 named is refused by KMS.
    let (wrapped,): (Vec<u8>,) = sqlx::query_as(
        "SELECT wrapped_key FROM data_keys WHERE purpose = 'phi-field' AND version = 2",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("row");
    let p = provider(&url, &key1).await;
    let ctx = KeyContext::new(&app.tenant, PURPOSE_FIELD);
    assert!(p.decrypt_data_key(&key1, &wrapped, &ctx).await.is_err());
    // Blind indexes keep working across all of it.
    let found =
        patriotpay::billing::find_by_phone(app.db(), &crypto, &app.tenant, "(555) 010-0001")
            .await
            .expect("search");
    assert_eq!(found.len(), 1);
    app.finish().await;
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn rotate_rewrap_reencrypt_sqlite() {
    rotate_rewrap_reencrypt(Backend::Sqlite).await
}

#[tokio::test]
#[ignore = "needs moto and PostgreSQL: see .ci/run"]
async fn rotate_rewrap_reencrypt_postgres() {
    rotate_rewrap_reencrypt(Backend::Postgres).await
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn warm_cache_makes_no_kms_calls_and_expires() {
    let url = moto_url();
    let key = create_key(&url).await;
    let app = TestApp::start_with(Backend::Sqlite, kms_config(url.clone(), key.clone())).await;
    let crypto = app.state().crypto.clone();
    reads_statement(&app).await;
    let warm = crypto.provider_calls();
    reads_statement(&app).await;
    assert_eq!(
        crypto.provider_calls(),
        warm,
        "a warm cache costs no KMS round trip"
    );

    // With a zero maximum age every use unwraps again.
    let (db, provider) = (
        app.db().clone(),
        std::sync::Arc::new(provider(&url, &key).await),
    );
    let cold = patriotpay::crypto::FieldCrypto::with_limits(
        db,
        provider,
        patriotpay::crypto::CacheLimits {
            max_age: std::time::Duration::ZERO,
            max_uses: u64::MAX,
        },
    );
    let stmt = app.statement_of(1).await;
    let header = patriotpay::billing::statement_header(app.db(), &stmt)
        .await
        .expect("q")
        .expect("statement");
    let permit = crate::common::statement_permit(app.db(), &header).await;
    patriotpay::billing::lines(app.db(), &cold, &header, &permit)
        .await
        .expect("decrypt");
    let first = cold.provider_calls();
    std::thread::sleep(std::time::Duration::from_millis(5));
    patriotpay::billing::lines(app.db(), &cold, &header, &permit)
        .await
        .expect("decrypt");
    assert!(
        cold.provider_calls() > first,
        "expired entries are unwrapped again"
    );
    app.finish().await;
}

/// A moto server of this test's own, so it can be stopped.
struct OwnMoto {
    child: std::process::Child,
    url: String,
}

impl OwnMoto {
    async fn start() -> OwnMoto {
        let bin = std::env::var("PATRIOTPAY_MOTO_SERVER")
            .expect("set PATRIOTPAY_MOTO_SERVER to the moto_server binary");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/moto-api/")).await.is_ok() {
                return OwnMoto { child, url };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto_server did not start on {url}");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn kms_down_fails_closed() {
    let mut moto = OwnMoto::start().await;
    let key = create_key(&moto.url).await;
    let app = TestApp::start_with(Backend::Sqlite, kms_config(moto.url.clone(), key)).await;
    let b = Browser::new(&app);
    assert_eq!(b.get("/readyz").await.status(), StatusCode::OK);
    let link = app.link(1).await;
    moto.stop();
    app.state().crypto.flush_cache();

    // Not ready; the link still opens (no decryption needed); the identity check, which must
    // decrypt, answers 503 with a request id and nothing else.
    let r = b.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    b.open_link(&link).await;
    assert!(b.page("/verify").await.contains("Confirm who you are"));
    let r = b.submit_dob("03", "14", "1984").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let rid = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id")
        .to_owned();
    let body = r.text().await.expect("body");
    assert!(body.contains("Temporarily unavailable") && body.contains(&rid));
    assert!(
        !body.contains("Decrypt") && !body.contains("kms"),
        "no internals"
    );
    assert_eq!(
        location(&b.get("/summary").await),
        "/verify",
        "nothing was verified"
    );
    // Nothing is written in plaintext (or at all) while the provider is down.
    let p = &patriotpay::demo::PATIENTS[0];
    let before = app.count("SELECT COUNT(*) FROM patients").await;
    let r = patriotpay::billing::import_patient(
        app.db(),
        &app.state().crypto,
        &app.tenant,
        &patriotpay::billing::NewPatient {
            first_name: patriotpay::phi::Phi::new(p.first_name.into()),
            last_name: patriotpay::phi::Phi::new(p.last_name.into()),
            dob: patriotpay::phi::Phi::new(p.dob.into()),
            zip: patriotpay::phi::Phi::new(p.zip.into()),
            phone: patriotpay::phi::Phi::new(p.phone.into()),
            account_number: patriotpay::phi::Phi::new("NEW-1".into()),
        },
    )
    .await;
    assert!(
        matches!(
            r,
            Err(patriotpay::billing::BillingError::Crypto(
                CryptoError::Unavailable(_)
            ))
        ),
        "{:?}",
        r.err()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM patients").await, before);
    app.finish().await;
}

/// A new HMAC key in moto (key spec HMAC_256, usage GENERATE_VERIFY_MAC), as audit anchors need.
async fn create_hmac_key(endpoint: &str) -> String {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let kms = aws_sdk_kms::Client::new(&moto_aws_config(endpoint).await);
    let out = kms
        .create_key()
        .description("patriotpay audit anchors")
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .expect("CreateKey HMAC_256 on moto");
    out.key_metadata()
        .expect("metadata")
        .arn()
        .expect("arn")
        .to_owned()
}

/// Audit anchors signed with `GenerateMac` and checked with `VerifyMac` (HMAC_SHA_256): a MAC
/// verifies, another message's does not, the data-key key cannot make one, and without a MAC key
/// anchoring says what to set; then through the server, anchor and verify, and a checkpoint with
/// another MAC is caught.
async fn audit_anchor_with_a_kms_hmac_key(backend: Backend) {
    let url = moto_url();
    let key = create_key(&url).await;
    let mac_key = create_hmac_key(&url).await;
    let with_mac = |mac_key_id: Option<String>| {
        let (url, key) = (url.clone(), key.clone());
        async move {
            KmsKeyProvider::connect(&KmsSettings {
                key_id: key,
                region: Some("us-east-1".into()),
                endpoint_url: Some(url),
                mac_key_id,
            })
            .await
        }
    };
    let p = with_mac(Some(mac_key.clone())).await;
    let (mac, key_id) = p.mac(b"a checkpoint").await.expect("GenerateMac");
    assert_eq!(mac.len(), 32, "HMAC-SHA256");
    assert!(p
        .verify_mac(&key_id, b"a checkpoint", &mac)
        .await
        .expect("VerifyMac"));
    assert!(!p
        .verify_mac(&key_id, b"a checkpoinT", &mac)
        .await
        .expect("VerifyMac"));
    let wrong_key = with_mac(Some(key.clone())).await;
    assert!(
        matches!(wrong_key.mac(b"x").await, Err(CryptoError::Unavailable(_))),
        "a symmetric encryption key makes no MAC"
    );
    match with_mac(None).await.mac(b"x").await {
        Err(CryptoError::Unavailable(m)) => {
            assert!(m.contains("PATRIOTPAY_AUDIT_MAC_KEY_ID"), "{m}")
        }
        other => panic!("no MAC key: {other:?}"),
    }

    let base = kms_config(url.clone(), key.clone());
    let app = TestApp::start_with(backend, move |cfg| {
        base(cfg);
        cfg.audit_mac_key_id = Some(mac_key);
    })
    .await;
    for n in 0..5 {
        crate::audit_chain::record(app.db(), "kms", n).await;
    }
    crate::audit_chain::seal(&app, patriotpay::clock::now_unix()).await;
    let provider = app.state().crypto.provider().clone();
    let file = crate::audit_chain::anchor_file(&app);
    let cp = patriotpay::audit::anchor::append(
        app.db(),
        provider.as_ref(),
        &file,
        patriotpay::clock::now_unix(),
    )
    .await
    .expect("anchor with KMS");
    let r = crate::audit_chain::assert_ok(&app, "anchored with KMS").await;
    assert!(r.checkpoints_ok >= 1);
    let forged = patriotpay::audit::anchor::Checkpoint {
        mac: hex::encode([7u8; 32]),
        ..cp
    };
    std::fs::write(
        &file,
        format!("{}\n", serde_json::to_string(&forged).expect("json")),
    )
    .expect("rewrite the anchor file");
    let b = crate::audit_chain::verify(&app)
        .await
        .broken
        .expect("caught");
    assert_eq!(
        b.problem,
        patriotpay::audit::verify::Problem::Checkpoint,
        "{}",
        b.detail
    );
    assert!(b.detail.contains("does not verify"), "{}", b.detail);
    app.finish().await;
}

#[tokio::test]
#[ignore = "needs moto: see .ci/run"]
async fn audit_anchor_with_a_kms_hmac_key_sqlite() {
    audit_anchor_with_a_kms_hmac_key(Backend::Sqlite).await
}

#[tokio::test]
#[ignore = "needs moto and PostgreSQL: see .ci/run"]
async fn audit_anchor_with_a_kms_hmac_key_postgres() {
    audit_anchor_with_a_kms_hmac_key(Backend::Postgres).await
}
