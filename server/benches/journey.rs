//! Load test of the whole payment path (issue 15): N patients at once each open their pay link,
//! give their date of birth, read the summary, pay their statement's $10.00 on the sandbox's
//! card page, come back and read the receipt, over real HTTP with a cookie jar each. Then checks
//! that every payment was booked exactly once and every balance is exact, and prints the rate and
//! the p50/p99 of each step. Not a test; prints figures.
//!
//!   cargo bench --profile dev --bench journey                    # 200 patients, SQLite
//!   BENCH_PATIENTS=500 cargo bench --profile dev --bench journey
//!   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --profile dev --bench journey
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use patriotpay::config::{Config, Secret};
use patriotpay::money::Money;
use sqlx::Connection;
use std::time::{Duration, Instant};
use support::{csrf_in, env_num};

const STEPS: [&str; 9] = [
    "open link",
    "date-of-birth page",
    "date of birth sent",
    "summary",
    "pay (to the card page)",
    "card page",
    "card sent",
    "back from the card page",
    "receipt",
];

fn location(r: &reqwest::Response) -> String {
    assert!(r.status().is_redirection(), "{} {}", r.url(), r.status());
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// One patient's journey, from their own address: the time of each step.
async fn journey(portal: String, link: String, n: usize) -> [Duration; 9] {
    // Each patient from an address of their own (through a trusted proxy), as in life: the
    // identity check's per-address limits would otherwise stop the 21st patient.
    let mut headers = reqwest::header::HeaderMap::new();
    let address = format!("10.{}.{}.{}", n / 65536 % 256, n / 256 % 256, n % 256);
    headers.insert("x-forwarded-for", address.parse().unwrap());
    let c = reqwest::Client::builder()
        .default_headers(headers)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut times = [Duration::ZERO; 9];
    let mut step = 0;
    let mut timed = |t: Instant| {
        times[step] = t.elapsed();
        step += 1;
    };
    let t = Instant::now();
    let r = c.get(&link).send().await.unwrap();
    assert_eq!(location(&r), "/verify");
    timed(t);
    let t = Instant::now();
    let csrf = csrf_in(&support::page(&c, format!("{portal}/verify")).await);
    timed(t);
    let t = Instant::now();
    let r = c
        .post(format!("{portal}/verify"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("dob_month", "03"),
            ("dob_day", "14"),
            ("dob_year", "1984"),
        ])
        .send()
        .await
        .unwrap();
    let to = location(&r);
    if to != "/summary" {
        let page = support::page(&c, format!("{portal}/verify")).await;
        let start = page.find("error-summary").unwrap_or(0);
        let said = &page[start..(start + 600).min(page.len())];
        panic!("patient {n}: the date of birth was not taken: {said}");
    }
    timed(t);
    let t = Instant::now();
    let summary = support::page(&c, format!("{portal}/summary")).await;
    assert!(summary.contains("$10.00"), "the summary shows the balance");
    timed(t);
    let t = Instant::now();
    let r = c
        .post(format!("{portal}/pay"))
        .form(&[
            ("csrf", csrf_in(&summary).as_str()),
            ("amount", "10.00"),
            ("from", "summary"),
        ])
        .send()
        .await
        .unwrap();
    let card_page = location(&r);
    timed(t);
    let t = Instant::now();
    let page = c
        .get(&card_page)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    timed(t);
    let t = Instant::now();
    let r = c
        .post(&card_page)
        .form(&[
            ("csrf", csrf_in(&page).as_str()),
            ("card_number", "4242424242424242"),
            ("exp", "12/34"),
            ("cvc", "123"),
        ])
        .send()
        .await
        .unwrap();
    let back = location(&r);
    timed(t);
    let t = Instant::now();
    let r = c.get(&back).send().await.unwrap();
    let receipt = location(&r);
    assert!(
        receipt.starts_with("/receipt/"),
        "straight to the receipt: {receipt}"
    );
    timed(t);
    let t = Instant::now();
    let page = support::page(&c, format!("{portal}{receipt}")).await;
    assert!(page.contains("Payment received") && page.contains("$10.00"));
    timed(t);
    times
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn bench(label: &str, database_url: Option<String>, patients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
    cfg.webhook_secret = Some(Secret::new("whsec_bench_journey"));
    cfg.database_url = database_url.map(Secret::new);
    cfg.autopay_every_secs = 0;
    cfg.trust_forwarded_for = true;
    let running = patriotpay::start(&cfg).await.unwrap();
    let links: Vec<(String, String)> = support::ten_dollar_statements(&running, patients)
        .await
        .into_iter()
        .map(|t| {
            let link = format!("{}/p/{}", running.public_url, t.token);
            (t.statement.as_str().to_owned(), link)
        })
        .collect();
    let db = running.state.db.clone();
    let payments_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = links
        .iter()
        .enumerate()
        .map(|(n, (_, link))| tokio::spawn(journey(running.public_url.clone(), link.clone(), n)))
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();

    // Nothing lost, nothing booked twice, every balance exact.
    let payments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(
        (payments - payments_before) as usize,
        patients,
        "one payment each"
    );
    for (statement, _) in &links {
        let balance = patriotpay::billing::balance(
            db.pool(),
            &patriotpay::ids::StatementId::from_db(statement.clone()),
        )
        .await
        .unwrap();
        assert_eq!(balance, Money::ZERO, "statement {statement} paid exactly");
        let booked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM payment_allocations WHERE statement_id = $1")
                .bind(statement)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(booked, 1, "statement {statement} paid once");
    }
    println!(
        "{label}: {patients} patients at once paid in {:.2} s = {:.1} journeys/s; every payment booked once, every balance $0.00",
        elapsed.as_secs_f64(),
        patients as f64 / elapsed.as_secs_f64()
    );
    println!("| step | p50 ms | p99 ms | max ms |");
    println!("| --- | --- | --- | --- |");
    for (i, name) in STEPS.iter().enumerate() {
        let mut times: Vec<Duration> = all.iter().map(|t| t[i]).collect();
        times.sort();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            quantile(&times, 1.0)
        );
    }
    running.stop().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let patients = env_num("BENCH_PATIENTS", 200);
    bench("SQLite", None, patients).await;
    if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        // A database of its own, dropped afterwards.
        let name = format!("bench_journey_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        bench("PostgreSQL", Some(format!("{base}/{name}")), patients).await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
