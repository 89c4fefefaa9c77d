//! Tests of field encryption, blind indexes, the key cache and the local key provider.

use super::*;

async fn setup() -> (tempfile::TempDir, FieldCrypto, TenantId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .expect("db");
    db.migrate().await.expect("migrate");
    let provider = LocalKeyProvider::load_or_create(&dir.path().join("master.key")).expect("key");
    let tenant = TenantId::generate();
    sqlx::query(
        "INSERT INTO tenants (id, name, support_phone, created_at) VALUES ($1, 'T', '', 0)",
    )
    .bind(tenant.as_str())
    .execute(db.pool())
    .await
    .expect("tenant");
    (dir, FieldCrypto::new(db, Arc::new(provider)), tenant)
}

#[tokio::test]
async fn round_trip_and_binding() {
    let (_dir, fc, tenant) = setup().await;
    let aad = FieldAad {
        tenant: &tenant,
        table: "patients",
        column: "last_name",
        row: "pat_1",
    };
    let ct = fc
        .encrypt_str(aad, &Phi::new("Canary".into()))
        .await
        .expect("enc");
    assert!(!ct.windows(6).any(|w| w == b"Canary"));
    assert_eq!(
        fc.decrypt_str(aad, &ct).await.expect("dec").expose(),
        "Canary"
    );

    // Moved to another row, column, table or tenant: refused.
    let other_tenant = TenantId::generate();
    for moved in [
        FieldAad {
            row: "pat_2",
            ..aad
        },
        FieldAad {
            column: "first_name",
            ..aad
        },
        FieldAad {
            table: "statements",
            ..aad
        },
        FieldAad {
            tenant: &other_tenant,
            ..aad
        },
    ] {
        assert!(fc.decrypt(moved, &ct).await.is_err(), "{moved:?} decrypted");
    }
    // Any flipped byte: refused.
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        assert!(
            fc.decrypt(aad, &bad).await.is_err(),
            "flip at {i} decrypted"
        );
    }
}

#[tokio::test]
async fn master_key_file_is_private_and_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("master.key");
    let a = LocalKeyProvider::load_or_create(&path).expect("create");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let b = LocalKeyProvider::load_or_create(&path).expect("reload");
    assert_eq!(a.key_id(), b.key_id());
    let ctx = KeyContext {
        tenant: "ten_x".into(),
        purpose: PURPOSE_FIELD,
    };
    let (dk, wrapped, key_id) = a.generate_data_key(&ctx).await.expect("gen");
    assert_eq!(key_id, a.key_id());
    let back = b
        .decrypt_data_key(b.key_id(), &wrapped, &ctx)
        .await
        .expect("unwrap");
    assert_eq!(dk.bytes(), back.bytes());
    let wrong = KeyContext {
        tenant: "ten_y".into(),
        purpose: PURPOSE_FIELD,
    };
    assert!(b
        .decrypt_data_key(b.key_id(), &wrapped, &wrong)
        .await
        .is_err());
}

#[tokio::test]
async fn rotation_keeps_old_data_readable() {
    let (_dir, fc, tenant) = setup().await;
    let aad = FieldAad {
        tenant: &tenant,
        table: "patients",
        column: "zip",
        row: "pat_1",
    };
    let old = fc.encrypt(aad, b"60614").await.expect("enc");
    assert_eq!(ciphertext_version(&old), Some(1));
    assert_eq!(
        fc.create_version(&tenant, PURPOSE_FIELD)
            .await
            .expect("rotate"),
        2
    );
    let new = fc.encrypt(aad, b"60614").await.expect("enc");
    assert_eq!(ciphertext_version(&new), Some(2));
    assert_eq!(&fc.decrypt(aad, &old).await.expect("old")[..], b"60614");
    fc.flush_cache();
    assert_eq!(
        &fc.decrypt(aad, &old).await.expect("old after flush")[..],
        b"60614"
    );
}

#[tokio::test]
async fn cache_is_bounded_by_uses_and_age() {
    let (dir, fc, tenant) = setup().await;
    let aad = FieldAad {
        tenant: &tenant,
        table: "patients",
        column: "zip",
        row: "pat_1",
    };
    let ct = fc.encrypt(aad, b"x").await.expect("enc");
    let provider = LocalKeyProvider::load_or_create(&dir.path().join("master.key")).expect("key");
    let by_uses = FieldCrypto::with_limits(
        fc.db.clone(),
        Arc::new(provider),
        CacheLimits {
            max_age: Duration::from_secs(3600),
            max_uses: 3,
        },
    );
    for _ in 0..4 {
        by_uses.decrypt(aad, &ct).await.expect("dec");
    }
    // One unwrap, three cached uses, then the fourth use exceeded the bound: a second unwrap.
    assert_eq!(by_uses.provider_calls(), 2);
    let provider = LocalKeyProvider::load_or_create(&dir.path().join("master.key")).expect("key");
    let by_age = FieldCrypto::with_limits(
        fc.db.clone(),
        Arc::new(provider),
        CacheLimits {
            max_age: Duration::ZERO,
            max_uses: u64::MAX,
        },
    );
    by_age.decrypt(aad, &ct).await.expect("dec");
    std::thread::sleep(Duration::from_millis(2));
    by_age.decrypt(aad, &ct).await.expect("dec");
    assert_eq!(
        by_age.provider_calls(),
        2,
        "an expired entry is unwrapped again"
    );
    // The flush epoch: another process asks, this one notices and empties its cache.
    fc.decrypt(aad, &ct).await.expect("dec");
    let before = fc.provider_calls();
    fc.decrypt(aad, &ct).await.expect("dec");
    assert_eq!(fc.provider_calls(), before, "warm cache: no provider call");
    FieldCrypto::request_flush_everywhere(&fc.db)
        .await
        .expect("bump");
    assert!(fc.poll_flush_epoch().await.expect("poll"));
    assert!(
        !fc.poll_flush_epoch().await.expect("poll"),
        "only once per bump"
    );
    fc.decrypt(aad, &ct).await.expect("dec");
    assert_eq!(fc.provider_calls(), before + 1, "flushed: unwrapped again");
}

#[tokio::test]
async fn blind_indexes_are_keyed_per_tenant_and_purpose() {
    let (_dir, fc, tenant) = setup().await;
    let a = fc
        .blind_index(&tenant, "phone", "+15550100001")
        .await
        .expect("bidx");
    assert_eq!(
        a,
        fc.blind_index(&tenant, "phone", "+15550100001")
            .await
            .expect("bidx")
    );
    assert_ne!(
        a,
        fc.blind_index(&tenant, "phone", "+15550100002")
            .await
            .expect("bidx")
    );
    assert_ne!(
        a,
        fc.blind_index(&tenant, "account", "+15550100001")
            .await
            .expect("bidx")
    );
    let other = TenantId::generate();
    sqlx::query(
        "INSERT INTO tenants (id, name, support_phone, created_at) VALUES ($1, 'U', '', 0)",
    )
    .bind(other.as_str())
    .execute(fc.db.pool())
    .await
    .expect("tenant");
    assert_ne!(
        a,
        fc.blind_index(&other, "phone", "+15550100001")
            .await
            .expect("bidx")
    );
    assert_eq!(a.len(), 32);
}
