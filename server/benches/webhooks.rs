//! Benchmark: processor events handled per second, end to end (signature check, the job
//! stored, the checkout and payment re-fetched from the processor, the payment booked on the
//! ledger), on SQLite and, when `BENCH_POSTGRES_URL` names a server, PostgreSQL. Not a test;
//! prints figures.
//!
//!   cargo bench --bench webhooks                       # 200 payments, 8 senders, SQLite
//!   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench webhooks
//!   BENCH_EVENTS=500 BENCH_CLIENTS=16 cargo bench --bench webhooks
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use patriotpay::config::{Config, Secret};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{csrf_in, env_num};

const SECRET: &str = "whsec_bench_secret";

/// `n` statements of demo patient 1, each with a $10.00 checkout paid on the sandbox's card page
/// while the sandbox's events are switched off: `n` paid checkouts the portal has not heard of.
/// Returns their processor session ids.
async fn paid_unheard(running: &patriotpay::Running, n: usize) -> Vec<String> {
    use patriotpay::money::Money;
    running.sandbox.stop_webhooks();
    let st = &running.state;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let actor = patriotpay::audit::Actor::system("bench");
    let mut sessions = vec![];
    for t in support::ten_dollar_statements(running, n).await {
        let plan = patriotpay::payments::CheckoutPlan {
            tenant: t.tenant,
            items: vec![(t.statement, Money::from_cents(1000))],
            patients: vec![t.patient],
            link: Some(t.link),
            user: None,
            return_prefix: "/pay",
            instalment: None,
        };
        let checkout = patriotpay::payments::start_checkout(
            &st.db,
            st.processor.as_ref(),
            &st.alerts,
            &plan,
            &running.public_url,
            &actor,
        )
        .await
        .unwrap();
        let page = c.get(&checkout).send().await.unwrap().text().await.unwrap();
        let r = c
            .post(&checkout)
            .form(&[
                ("csrf", csrf_in(&page).as_str()),
                ("card_number", "4242424242424242"),
                ("exp", "12/34"),
                ("cvc", "123"),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "the sandbox took the payment");
        sessions.push(checkout.rsplit('/').next().unwrap().to_owned());
    }
    sessions
}

async fn bench(label: &str, database_url: Option<String>, events: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
    cfg.webhook_secret = Some(Secret::new(SECRET));
    cfg.database_url = database_url.map(Secret::new);
    let running = patriotpay::start(&cfg).await.unwrap();
    let sessions = paid_unheard(&running, events).await;
    let url = format!("{}/webhooks/stripe", running.public_url);
    let queue = Arc::new(tokio::sync::Mutex::new(sessions.into_iter().enumerate()));
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..clients {
        let (queue, url) = (queue.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut slowest = Duration::ZERO;
            loop {
                let Some((i, session)) = queue.lock().await.next() else {
                    return slowest;
                };
                let body = serde_json::json!({
                    "id": format!("evt_bench_{i}"), "object": "event",
                    "type": "checkout.session.completed",
                    "data": { "object": { "id": session, "object": "checkout.session" } },
                })
                .to_string();
                let sig = patriotpay::payments::signature::sign(
                    SECRET,
                    patriotpay::clock::now_unix(),
                    body.as_bytes(),
                );
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Stripe-Signature", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                slowest = slowest.max(t.elapsed());
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    let acked = started.elapsed();
    // Whatever the webhook left to the worker, finished.
    let db = running.state.db.clone();
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM processor_events WHERE state = 'done'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        if done as usize >= events {
            break;
        }
        running.state.jobs.wake();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = started.elapsed();
    let booked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(booked as usize, events, "every payment booked once");
    println!(
        "{label}: {events} events from {clients} senders: acknowledged in {:.2} s, all booked in {:.2} s = {:.0} events/s; slowest acknowledgement {:.0} ms",
        acked.as_secs_f64(),
        all.as_secs_f64(),
        events as f64 / all.as_secs_f64(),
        slowest.as_secs_f64() * 1000.0
    );
    running.stop().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_num("BENCH_EVENTS", 200);
    let clients = env_num("BENCH_CLIENTS", 8);
    println!(
        "{} cores; each event: signature, job stored, checkout and payment re-fetched from the sandbox, payment booked",
        std::thread::available_parallelism()?.get()
    );
    bench("SQLite", None, events, clients).await;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let name = format!("pp_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("a database in the URL");
        bench(
            "PostgreSQL",
            Some(format!("{base}/{name}")),
            events,
            clients,
        )
        .await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}
