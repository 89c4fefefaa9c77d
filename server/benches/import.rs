//! Benchmark: statement import, statements per second with encryption on, from a CSV generated
//! on the fly (3 lines per statement, a new patient every 2 statements), on SQLite and, when
//! `BENCH_POSTGRES_URL` names a server, PostgreSQL; then the same file again (every statement
//! unchanged). Peak memory (VmHWM) is printed before and after, to show it does not grow with
//! the file. Not a test; prints figures.
//!
//!   cargo bench --profile dev --bench import
//!   BENCH_STATEMENTS=100000 cargo bench --release --bench import
//!   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --profile dev --bench import
#![allow(clippy::expect_used, clippy::unwrap_used)]

use patriotpay::config::{Config, Secret};
use patriotpay::intake::{run, Field, Format};
use sqlx::Connection;
use std::io::Read;
use std::time::Instant;

/// A CSV of `n` statements, made row by row as it is read (nothing held but the current row).
struct Generated {
    n: usize,
    statement: usize,
    line: usize,
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
}

impl Generated {
    fn new(n: usize) -> Self {
        Generated {
            n,
            statement: 0,
            line: 0,
            buf: vec![],
            pos: 0,
            header_done: false,
        }
    }

    fn refill(&mut self) -> bool {
        self.buf.clear();
        self.pos = 0;
        if !self.header_done {
            self.header_done = true;
            let header: Vec<&str> = Field::COLUMNS.iter().map(|f| f.column()).collect();
            self.buf.extend_from_slice(header.join(",").as_bytes());
            self.buf.push(b'\n');
            return true;
        }
        if self.statement >= self.n {
            return false;
        }
        let (s, l) = (self.statement, self.line);
        let p = s / 2;
        let row = format!(
            "bench-practice,P-{p},First{p},Last{p},1980-01-{day:02},{p} Bench Street,,Chicago,IL,60614,+1312{phone:07},,ACCT-{p},en,false,false,,,,S-{s},2026-11-01,2026-12-01,USD,90.00,2026-10-{day:02},99213,Office visit {l},100.00,60.00,10.00,30.00,false\n",
            day = 1 + p % 28,
            phone = p % 10_000_000,
        );
        self.buf.extend_from_slice(row.as_bytes());
        self.line += 1;
        if self.line == 3 {
            self.line = 0;
            self.statement += 1;
        }
        true
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() && !self.refill() {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn bench(label: &str, database_url: Option<String>, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path().to_path_buf());
    cfg.database_url = database_url.map(Secret::new);
    let (db, crypto) = patriotpay::open_storage(&cfg).await.unwrap();
    let tenant = patriotpay::billing::create_tenant(&db, "Bench Practice", "+13125550100")
        .await
        .unwrap();
    for pass in ["new", "unchanged"] {
        let opts = run::Options {
            tenant: tenant.clone(),
            format: Format::Csv,
            dry_run: false,
            partial: false,
            source: run::Source::Cli,
            actor: patriotpay::audit::Actor::system("bench"),
            now: patriotpay::clock::now_unix(),
            alerts: Default::default(),
            public_url: "https://pay.example.org".into(),
        };
        let before = peak_mib();
        let t = Instant::now();
        let s = run::import(&db, crypto.clone(), Generated::new(n), &opts, |_| {})
            .await
            .unwrap();
        let took = t.elapsed().as_secs_f64();
        assert!(s.committed && s.rejected == 0, "{s:?}");
        println!(
            "{label} ({pass}): {} statements ({} lines) in {took:.2} s = {:.0} statements/s; {} created, {} unchanged; peak memory {before:.0} → {:.0} MiB",
            s.statements(),
            s.statements() * 3,
            s.statements() as f64 / took,
            s.created,
            s.unchanged,
            peak_mib()
        );
    }
    db.pool().close().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = std::env::var("BENCH_STATEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!(
        "{} cores; local key file (AES-256-GCM, data key cached); one transaction per import",
        std::thread::available_parallelism()?.get()
    );
    bench("SQLite", None, n).await;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let name = format!("pp_bench_import_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("a database in the URL");
        bench("PostgreSQL", Some(format!("{base}/{name}")), n).await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}
