//! Benchmark: password sign-ins per second with argon2id at the configured cost (m=19456 KiB,
//! t=2, p=1), and the latency of an ordinary page request while sign-ins saturate the server.
//! Not a test; prints figures.
//!
//!   cargo bench --bench logins            # 20 s of load from 8 clients
//!   BENCH_SECS=10 BENCH_CLIENTS=4 cargo bench --bench logins
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use patriotpay::access::Role;
use patriotpay::config::Config;
use patriotpay::crypto::token_hash;
use patriotpay::phi::Phi;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::csrf_in;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir()?;
    let cfg = Config::for_data_dir(dir.path().to_path_buf());
    let running = patriotpay::start(&cfg).await?;
    let (db, crypto) = (running.state.db.clone(), running.state.crypto.clone());
    let tenant = patriotpay::demo::ensure(&db, &crypto).await?;
    let now = patriotpay::clock::now_unix();
    // One account per client, as when many people sign in at once. (One account hammered by
    // every client would meet the per-account limit: attempts are claimed before the password
    // is checked, so more than five in flight on one account answer 429 by design.)
    for i in 0..clients {
        let (user, token) = patriotpay::accounts::add_user(
            &db,
            &crypto,
            &format!("bench{i}@example.org"),
            Role::SupportAgent,
            Some(&tenant),
            now,
        )
        .await?;
        patriotpay::accounts::totp_setup(&db, &crypto, &user).await?;
        let code = patriotpay::accounts::current_totp(&db, &crypto, &user, now).await?;
        patriotpay::accounts::complete_enrolment(
            &db,
            &crypto,
            &token_hash(&token),
            Phi::new("correct horse battery".into()),
            &code,
            now,
        )
        .await?;
    }
    let url = running.public_url.clone();
    println!(
        "{clients} clients signing in for {secs} s against {url} ({} cores)",
        std::thread::available_parallelism()?.get()
    );

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = vec![];
    for i in 0..clients {
        let (url, done, failed) = (url.clone(), done.clone(), failed.clone());
        let email = format!("bench{i}@example.org");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            while Instant::now() < until {
                let page = support::page(&client, format!("{url}/staff/login")).await;
                let r = client
                    .post(format!("{url}/staff/login"))
                    .form(&[
                        ("csrf", csrf_in(&page).as_str()),
                        ("email", email.as_str()),
                        ("password", "correct horse battery"),
                    ])
                    .send()
                    .await
                    .unwrap();
                if r.headers().get("location").and_then(|v| v.to_str().ok()) == Some("/staff/mfa") {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // An ordinary page (the patient landing page) requested alongside, one at a time.
    let probe = reqwest::Client::new();
    let mut latencies = vec![];
    tokio::time::sleep(Duration::from_millis(500)).await;
    while Instant::now() < until {
        let t = Instant::now();
        let r = probe.get(format!("{url}/")).send().await?;
        let _ = r.bytes().await?;
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.await?;
    }
    // Baseline: the same page with no sign-in load.
    let mut idle = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        let _ = probe.get(format!("{url}/")).send().await?.bytes().await?;
        idle.push(t.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0
    };
    let total = done.load(Ordering::Relaxed);
    println!(
        "sign-ins (password step, argon2id verify): {total} in {secs} s = {:.1}/s; refused: {}",
        total as f64 / secs as f64,
        failed.load(Ordering::Relaxed)
    );
    println!(
        "page latency under sign-in load: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms (n={})",
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.95),
        pct(&mut latencies, 0.99),
        latencies.len()
    );
    println!(
        "page latency idle: p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut idle, 0.5),
        pct(&mut idle, 0.99)
    );
    running.stop().await;
    Ok(())
}
