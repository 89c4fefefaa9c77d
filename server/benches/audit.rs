//! Benchmark: audit events one server writes per second with the chain's sealer running (each a
//! single autocommit insert, as a page view writes it) beside the same writes on a bare database
//! (no sealer), how long until all of them are sealed,
//! then, the server stopped and the trail grown to 100,000 events, how fast one `seal_pending`
//! seals them and `audit verify` time per 100,000 events, on SQLite and, when
//! `BENCH_POSTGRES_URL` names a server, PostgreSQL. Not a test; prints figures.
//!
//!   cargo bench --profile dev --bench audit
//!   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --profile dev --bench audit
//!   BENCH_EVENTS=20000 BENCH_WRITERS=16 BENCH_VERIFY_EVENTS=200000 cargo bench --profile dev --bench audit
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use patriotpay::audit::{chain, Actor, Event, Outcome};
use patriotpay::config::{Config, Secret};
use sqlx::Connection;
use std::time::{Duration, Instant};
use support::env_num;

async fn max_seq(db: &patriotpay::db::Db) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM audit_events")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Waits until the server's sealer has sealed through `seq`.
async fn sealed_through(db: &patriotpay::db::Db, seq: i64) {
    while chain::head(db).await.unwrap().0 < seq {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` events written straight into the table in large transactions (fast set-up for verify).
async fn bulk(db: &patriotpay::db::Db, n: usize) {
    let now = patriotpay::clock::now_unix();
    let mut done = 0;
    while done < n {
        let mut tx = db.begin_write().await.unwrap();
        for _ in 0..50 {
            let rows = 100.min(n - done);
            if rows == 0 {
                break;
            }
            let mut sql = String::from(
                "INSERT INTO audit_events (id, at, actor, on_behalf_of, tenant_id, patient_id, \
                 action, resource, request_id, address, outcome) VALUES ",
            );
            for i in 0..rows {
                let b = i * 6;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, NULL, 'ten_00000000000000000000000000000001', ${}, \
                     'statement.itemised.view', ${}, ${}, '192.0.2.1', 'success')",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            let mut q = sqlx::query(&sql);
            for i in 0..rows {
                let k = done + i;
                q = q
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(now)
                    .bind(format!("link:lnk_{k:032x}"))
                    .bind(format!("pat_{k:032x}"))
                    .bind(format!("stm_{k:032x}"))
                    .bind(uuid::Uuid::new_v4().to_string());
            }
            q.execute(&mut *tx).await.unwrap();
            done += rows;
        }
        tx.commit().await.unwrap();
    }
}

/// `events` page-view events from `writers` tasks, one autocommit insert each; how long it took.
async fn write_events(db: &patriotpay::db::Db, events: usize, writers: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = vec![];
    for w in 0..writers {
        let db = db.clone();
        let share = events / writers + usize::from(w < events % writers);
        tasks.push(tokio::spawn(async move {
            let actor = Actor {
                id: format!("link:lnk_bench{w}"),
                on_behalf_of: None,
                request_id: Some(uuid::Uuid::new_v4().to_string()),
                address: Some("192.0.2.1".into()),
                at: None,
            };
            for i in 0..share {
                let resource = format!("stm_{w}_{i}");
                patriotpay::audit::record(
                    db.pool(),
                    Event {
                        actor: &actor,
                        tenant: None,
                        patient: None,
                        action: "statement.itemised.view",
                        resource: Some(&resource),
                        outcome: Outcome::Success,
                    },
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// The same writes on a bare database, no server and no sealer: the baseline.
async fn baseline(label: &str, database_url: String, events: usize, writers: usize) {
    let db = patriotpay::db::Db::connect(&database_url).await.unwrap();
    db.migrate().await.unwrap();
    let took = write_events(&db, events, writers).await;
    println!(
        "{label}: without a sealer (no server): {:.0} events/s",
        events as f64 / took.as_secs_f64()
    );
}

async fn bench(
    label: &str,
    database_url: Option<String>,
    events: usize,
    writers: usize,
    verify_events: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
    cfg.webhook_secret = Some(Secret::new("whsec_bench_secret"));
    cfg.database_url = database_url.map(Secret::new);
    let running = patriotpay::start(&cfg).await.unwrap();
    let db = running.state.db.clone();

    // Writers: page-view events, one autocommit insert each, while the server seals.
    let started = Instant::now();
    let written = write_events(&db, events, writers).await;
    let last = max_seq(&db).await;
    sealed_through(&db, last).await;
    let sealed = started.elapsed();
    println!(
        "{label}: {events} events from {writers} writers in {:.2} s = {:.0} events/s with the sealer running; all sealed {:.2} s after the first write ({:.0} ms after the last)",
        written.as_secs_f64(),
        events as f64 / written.as_secs_f64(),
        sealed.as_secs_f64(),
        (sealed - written).as_secs_f64() * 1000.0
    );

    // Sealing and verifying alone: the server stopped, the trail grown to `verify_events`,
    // sealed by one `seal_pending` call, then walked.
    let provider = running.state.crypto.provider().clone();
    let alerts = running.state.alerts.clone();
    running.stop().await;
    let have = usize::try_from(last).unwrap_or(0);
    bulk(&db, verify_events.saturating_sub(have)).await;
    let t = Instant::now();
    let r = chain::seal_pending(
        &db,
        &alerts,
        patriotpay::clock::now_unix(),
        &chain::Sealing::default(),
    )
    .await
    .unwrap();
    let sealing = t.elapsed();
    assert_eq!(r.head_seq, max_seq(&db).await, "all sealed");
    let t = Instant::now();
    let report = patriotpay::audit::verify::verify_db(
        &db,
        provider.as_ref(),
        &dir.path().join("audit-anchors.jsonl"),
        &|_, _| {},
    )
    .await
    .unwrap();
    let walked = t.elapsed();
    assert!(report.ok(), "{:?}", report.broken);
    let n = report.events_sealed as f64;
    println!(
        "{label}: sealed {} events in {:.2} s = {:.0} seals/s; verify walked {} events in {:.2} s = {:.2} s per 100,000 ({:.1} s per million)",
        r.sealed_events,
        sealing.as_secs_f64(),
        r.sealed_events as f64 / sealing.as_secs_f64(),
        report.events_sealed,
        walked.as_secs_f64(),
        walked.as_secs_f64() * 100_000.0 / n,
        walked.as_secs_f64() * 1_000_000.0 / n
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_num("BENCH_EVENTS", 10_000);
    let writers = env_num("BENCH_WRITERS", 8);
    let verify_events = env_num("BENCH_VERIFY_EVENTS", 100_000);
    println!(
        "{} cores; writes are single autocommit inserts through audit::record; the server's sealer seals every second",
        std::thread::available_parallelism()?.get()
    );
    let base_dir = tempfile::tempdir()?;
    baseline(
        "SQLite",
        format!("sqlite://{}", base_dir.path().join("base.db").display()),
        events,
        writers,
    )
    .await;
    bench("SQLite", None, events, writers, verify_events).await;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let name = format!("pp_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        for db in [&name, &format!("{name}_base")] {
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await?;
        }
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("a database in the URL");
        baseline("PostgreSQL", format!("{base}/{name}_base"), events, writers).await;
        bench(
            "PostgreSQL",
            Some(format!("{base}/{name}")),
            events,
            writers,
            verify_events,
        )
        .await;
        for db in [&name, &format!("{name}_base")] {
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
    }
    Ok(())
}
