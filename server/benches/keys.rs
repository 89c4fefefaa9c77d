//! Benchmark: `keys reencrypt` and `keys rotate-index` over many patients, and the decryption cost of a page view with a
//! warm key cache. Not a test; prints figures.
//!
//!   cargo bench --bench keys                              # 100,000 patients, local key file
//!   BENCH_PATIENTS=20000 cargo bench --bench keys
//!   BENCH_KMS_ENDPOINT=http://127.0.0.1:5155 cargo bench --bench keys   # KMS on moto
//!   (with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION set to test values)
#![allow(clippy::expect_used, clippy::unwrap_used)]

use patriotpay::config::{Config, KeyProviderKind};
use patriotpay::crypto::FieldAad;
use patriotpay::ids::PatientId;
use patriotpay::phi::Phi;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
    if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        cfg.database_url = Some(patriotpay::config::Secret::new(url));
    }
    let provider = if let Ok(endpoint) = std::env::var("BENCH_KMS_ENDPOINT") {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .load()
            .await;
        let key = aws_sdk_kms::Client::new(&conf).create_key().send().await?;
        cfg.key_provider = KeyProviderKind::AwsKms;
        cfg.kms_key_id = key.key_metadata().and_then(|m| m.arn()).map(str::to_owned);
        cfg.aws_region = Some("us-east-1".into());
        cfg.kms_endpoint_url = Some(endpoint);
        "aws-kms (moto)"
    } else {
        "local key file"
    };
    let (db, crypto) = patriotpay::open_storage(&cfg).await?;
    let tenant =
        patriotpay::billing::create_tenant(&db, "Bench Practice", "(555) 000-0000").await?;
    println!(
        "provider: {provider}; database: {:?}; patients: {n}",
        db.backend()
    );

    // Seed: six encrypted fields and three blind indexes per patient, 1,000 rows a transaction.
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut rows = vec![];
        for j in i..(i + 1000).min(n) {
            let id = PatientId::generate();
            let mut cts = vec![];
            for (col, value) in [
                ("first_name", format!("First{j}")),
                ("last_name", format!("Last{j}")),
                ("dob", "1980-01-01".to_owned()),
                ("zip", "60614".to_owned()),
                ("phone", format!("+1555{j:07}")),
                ("account_number", format!("ACC-{j}")),
            ] {
                let aad = FieldAad {
                    tenant: &tenant,
                    table: "patients",
                    column: col,
                    row: id.as_str(),
                };
                cts.push(crypto.encrypt_str(aad, &Phi::new(value)).await?);
            }
            let mut bidx = vec![];
            for what in ["phone", "last-name+dob", "account-number"] {
                bidx.push(
                    crypto
                        .blind_index(&tenant, what, &format!("{what}{j}"))
                        .await?,
                );
            }
            rows.push((id, cts, bidx));
        }
        let mut tx = db.begin_write().await?;
        for (id, cts, bidx) in rows {
            let mut q = sqlx::query(
                "INSERT INTO patients (id, tenant_id, first_name_ct, last_name_ct, dob_ct, zip_ct, phone_ct,
                     account_number_ct, phone_bidx, name_dob_bidx, account_bidx, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)",
            )
            .bind(id.as_str().to_owned())
            .bind(tenant.as_str().to_owned());
            for c in cts.into_iter().chain(bidx) {
                q = q.bind(c);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        i += 1000;
    }
    println!("seed: {:.1}s", started.elapsed().as_secs_f64());

    patriotpay::keys::rotate(&db, &crypto, Some(&tenant), false).await?;
    let started = Instant::now();
    let s = patriotpay::keys::reencrypt(&db, &crypto, Some(&tenant), 500, false).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "keys reencrypt: {} rows, {} values in {:.1}s ({:.0} patients/s, {:.0} values/s); provider calls so far: {}",
        s.rows,
        s.values_reencrypted,
        secs,
        s.rows as f64 / secs,
        s.values_reencrypted as f64 / secs,
        crypto.provider_calls()
    );
    assert_eq!(s.values_reencrypted as usize, n * 6);

    // `keys rotate-index` on the same practice: every patient's three indexes rebuilt from
    // their decrypted columns under a new key, switched, and the old key destroyed.
    let started = Instant::now();
    let r = patriotpay::keys::rotate_index(
        &db,
        &crypto,
        &patriotpay::keys::RotateIndexOptions {
            only: Some(tenant.clone()),
            batch: 500,
            grace: std::time::Duration::ZERO,
            max_batches: None,
        },
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "keys rotate-index: {} values built, {} switched in {:.1}s ({:.0} patients/s)",
        r.values_built,
        r.values_switched,
        secs,
        n as f64 / secs
    );
    assert_eq!(r.values_switched as usize, n * 3);

    // A page view's decryption with a warm cache: the itemised statement of the demo practice
    // (4 lines: 8 values) plus the identity answers (2 values).
    let demo = patriotpay::demo::ensure(&db, &crypto).await?;
    let stmt = patriotpay::demo::statement_of(&db, &crypto, &demo, 3).await?;
    let header = patriotpay::billing::statement_header(&db, &stmt)
        .await?
        .expect("statement");
    // The benchmark asks the policy like a page would (one permit, one audit event).
    let who = patriotpay::access::Principal::patient_of(
        "bench".into(),
        &header.tenant_id,
        &header.patient_id,
    );
    let permit = patriotpay::access::permit(
        db.pool(),
        patriotpay::access::Ask {
            who: &who,
            actor: &patriotpay::audit::Actor::system("bench"),
            action: patriotpay::access::Action::ViewItemisedStatement,
            on: patriotpay::access::Resource {
                tenant: &header.tenant_id,
                patient: Some(&header.patient_id),
                clinical_restricted: false,
            },
            event: "bench.statement.view",
            resource: None,
            now: patriotpay::clock::now_unix(),
        },
    )
    .await?;
    let answers = patriotpay::billing::Answers {
        dob: Some("2000-01-01"),
        zip: Some("00000"),
    };
    patriotpay::billing::lines(&db, &crypto, &header, &permit).await?;
    let calls = crypto.provider_calls();
    let iters = 2000;
    let started = Instant::now();
    for _ in 0..iters {
        patriotpay::billing::lines(&db, &crypto, &header, &permit).await?;
        patriotpay::billing::answers_match(&db, &crypto, &demo, &header.patient_id, answers)
            .await?;
    }
    let per = started.elapsed().as_secs_f64() / f64::from(iters);
    println!(
        "page view (statement lines + identity answers, 10 values, 2 queries), warm cache: {:.0} µs; provider calls during it: {}",
        per * 1e6,
        crypto.provider_calls() - calls
    );
    // Decryption alone, without the queries.
    let aad = FieldAad {
        tenant: &tenant,
        table: "t",
        column: "c",
        row: "r",
    };
    let ct = crypto
        .encrypt(aad, b"Comprehensive metabolic panel")
        .await?;
    let started = Instant::now();
    for _ in 0..100_000 {
        crypto.decrypt(aad, &ct).await?;
    }
    println!(
        "one field decrypt, warm cache: {:.2} µs",
        started.elapsed().as_secs_f64() / 100_000.0 * 1e6
    );
    Ok(())
}
