//! The floor for the page benchmark (`bench/pages.sh`, issue 15): the "fortunes" shape built
//! from the portal's own crates and pool settings (`patriotpay::db::Db`, axum): one query of 12
//! rows, a 13th added, sorted and escaped into an HTML table. Nothing a real page does is
//! cheaper, so the portal's pages are reported as a share of this.
//!
//!   cargo run --profile perf --example floor -- sqlite:///tmp/floor.db 127.0.0.1:3900
//!   FLOOR_AUDIT=1 …   # plus one audit-shaped INSERT committed on its own per request
#![forbid(unsafe_code)]

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use patriotpay::db::Db;

#[derive(Clone)]
struct Floor {
    db: Db,
    audit: bool,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn fortunes(State(f): State<Floor>) -> Result<Html<String>, String> {
    let mut rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, message FROM fortune")
        .fetch_all(f.db.pool())
        .await
        .map_err(|e| e.to_string())?;
    rows.push((0, "Additional fortune added at request time.".into()));
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    if f.audit {
        sqlx::query("INSERT INTO floor_audit (at, what) VALUES ($1, $2)")
            .bind(patriotpay::clock::now_unix())
            .bind("fortunes.view")
            .execute(f.db.pool())
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut html = String::from(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in rows {
        html.push_str(&format!(
            "<tr><td>{id}</td><td>{}</td></tr>",
            escape(&message)
        ));
    }
    html.push_str("</table></body></html>");
    Ok(Html(html))
}

const MESSAGES: [&str; 12] = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "フレームワークのベンチマーク",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite:///tmp/patriotpay-floor.db".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3900".into());
    let db = Db::connect(&url).await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS fortune (id BIGINT PRIMARY KEY, message TEXT NOT NULL)",
        "DELETE FROM fortune",
        "CREATE TABLE IF NOT EXISTS floor_audit (at BIGINT NOT NULL, what TEXT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(db.pool()).await?;
    }
    for (i, m) in MESSAGES.iter().enumerate() {
        sqlx::query("INSERT INTO fortune (id, message) VALUES ($1, $2)")
            .bind(i64::try_from(i)? + 1)
            .bind(*m)
            .execute(db.pool())
            .await?;
    }
    let floor = Floor {
        db,
        audit: std::env::var("FLOOR_AUDIT").is_ok_and(|v| v == "1"),
    };
    let app = Router::new()
        .route("/fortunes", get(fortunes))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "floor listening on http://{}/fortunes",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
