//! Subcommands whose work lives in the library (main.rs dispatches to them): API keys,
//! statement import and the message outbox. Each prints for an operator and writes the audit
//! event a staff page would.

use crate::apikeys;
use crate::audit::{self, Actor, Outcome};
use crate::config::{ApikeysCommand, Command, Config, OutboxCommand};
use crate::ids::TenantId;
use crate::intake::run::{self, Options, Source, Summary};
use crate::intake::Format;

fn practice(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(raw.trim())
        .ok_or_else(|| anyhow::anyhow!("{raw:?} is not a practice id (ten_…)"))
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "never".to_owned(), crate::clock::display_date_unix)
}

/// `patriotpay apikeys …`.
pub async fn apikeys(cfg: &Config, action: ApikeysCommand) -> anyhow::Result<()> {
    let (db, _crypto) = crate::open_storage(cfg).await?;
    let now = crate::clock::now_unix();
    let event = |tenant: TenantId, action: &'static str, id: String| {
        let db = db.clone();
        async move {
            audit::record(
                db.pool(),
                audit::Event {
                    actor: &Actor::system("cli"),
                    tenant: Some(&tenant),
                    patient: None,
                    action,
                    resource: Some(&id),
                    outcome: Outcome::Success,
                },
            )
            .await
        }
    };
    match action {
        ApikeysCommand::Create { practice: p, label } => {
            let tenant = practice(&p)?;
            let (id, key) = apikeys::create(&db, &tenant, &label, "cli", now).await?;
            event(tenant, "apikey.create", id.clone()).await?;
            println!("API key {id} for {p} (statement import). It is shown this once: keep it in");
            println!("the billing system's secret store; lost, revoke it and make another.");
            println!("{key}");
        }
        ApikeysCommand::List { practice: p } => {
            let tenant = practice(&p)?;
            let keys = apikeys::list(&db, &tenant).await?;
            for k in &keys {
                let state = match k.revoked_at {
                    Some(t) => format!("revoked {}", when(Some(t))),
                    None => "live".to_owned(),
                };
                println!(
                    "{}  {}…  {:?}  made {} by {}  last used {}  {state}",
                    k.id,
                    k.prefix,
                    k.label,
                    when(Some(k.created_at)),
                    k.created_by,
                    when(k.last_used_at)
                );
            }
            println!("{} key(s).", keys.len());
        }
        ApikeysCommand::Revoke { practice: p, id } => {
            let tenant = practice(&p)?;
            anyhow::ensure!(
                apikeys::revoke(&db, &tenant, id.trim(), now).await?,
                "practice {p} has no live key {id}"
            );
            event(tenant, "apikey.revoke", id.clone()).await?;
            println!("Key {id} revoked: requests presenting it are refused from now on.");
        }
    }
    Ok(())
}

/// Statements were refused: the command ran, and says so by its exit code (2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The process exit code for a command's error: 2 when statements were refused, else 1.
/// The portal's public address as links carry it (the configured one, else the listen address).
pub fn public_base(cfg: &Config) -> String {
    cfg.public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.addr))
        .trim_end_matches('/')
        .to_owned()
}

/// Tells the operator where a staff set-up link went: emailed (the address masked), or, with no
/// email provider configured (the email waits in the outbox), the link to pass on by hand.
pub fn tell_setup_link(cfg: &Config, email: &str, token: &str) {
    let hours = crate::accounts::ENROLMENT_TTL_SECS / 3600;
    match cfg.messaging.email_provider {
        crate::config::EmailProviderKind::Smtp => println!(
            "The one-time set-up link was emailed to {} (valid {hours} hours).",
            crate::accounts::masked_email(email)
        ),
        crate::config::EmailProviderKind::Outbox => {
            println!(
                "No email provider is configured (PATRIOTPAY_EMAIL_PROVIDER=outbox), so the email \
                 waits in the outbox. Pass this one-time set-up link on yourself (valid {hours} hours):"
            );
            println!("{}/staff/enrol/{token}", public_base(cfg));
        }
    }
}

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Refused>().is_some() {
        2
    } else {
        1
    }
}

/// `patriotpay import FILE --practice P [--dry-run] [--partial] [--format csv|json]`.
pub async fn import(cfg: &Config, command: Command) -> anyhow::Result<()> {
    let Command::Import {
        file,
        practice: p,
        dry_run,
        partial,
        format,
    } = command
    else {
        anyhow::bail!("not an import command");
    };
    let tenant = practice(&p)?;
    let format = match format.as_deref() {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        _ => match file.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => anyhow::bail!("say --format csv or --format json: the file name does not tell"),
        },
    };
    let opened = std::fs::File::open(&file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let (db, crypto) = crate::open_storage(cfg).await?;
    anyhow::ensure!(
        crate::billing::tenant(&db, &tenant).await?.is_some(),
        "no practice {tenant}"
    );
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = Counting {
        inner: std::io::BufReader::with_capacity(256 * 1024, opened),
        read: read.clone(),
    };
    let pb = crate::keys::progress(size, "statements");
    let opts = Options {
        tenant,
        format,
        dry_run,
        partial,
        source: Source::Cli,
        actor: crate::audit::Actor::system("cli"),
        now: crate::clock::now_unix(),
        alerts: crate::alerts::AlertSink::configured(cfg, Some(crypto.clone())),
        public_url: crate::base_url(&cfg.public_url, cfg.addr),
    };
    let summary = run::import(&db, crypto, reader, &opts, |n| {
        if n % 256 == 0 {
            pb.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
        }
    })
    .await?;
    pb.set_position(size);
    pb.finish_and_clear();
    report(&summary, dry_run)
}

/// Prints the summary; an error (exit code 2) when statements were refused, 1 when the file
/// could not be imported at all.
fn report(s: &Summary, dry_run: bool) -> anyhow::Result<()> {
    for r in &s.rejections {
        println!("{r}");
    }
    if s.rejected > s.rejections.len() as u64 {
        println!(
            "… and {} more refused",
            s.rejected - s.rejections.len() as u64
        );
    }
    let what = if dry_run { "would be" } else { "were" };
    println!(
        "{} statement(s): {} created, {} updated, {} unchanged, {} rejected ({what}; import {}).",
        s.statements(),
        s.created,
        s.updated,
        s.unchanged,
        s.rejected,
        s.import_id
    );
    if let Some(fatal) = &s.fatal {
        anyhow::bail!("nothing imported: {fatal}");
    }
    if s.rejected > 0 {
        let written = if s.committed {
            "the others were imported"
        } else if dry_run {
            "dry run: nothing written"
        } else {
            "nothing was written (use --partial to take the good ones)"
        };
        return Err(Refused(format!("{} statement(s) refused; {written}", s.rejected)).into());
    }
    if dry_run {
        println!("Dry run: nothing written.");
    }
    Ok(())
}

/// A reader that counts the bytes it hands on (for the progress bar).
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// `patriotpay outbox work | status`.
pub async fn outbox(cfg: &Config, action: OutboxCommand) -> anyhow::Result<()> {
    let (db, crypto) = crate::open_storage(cfg).await?;
    match action {
        OutboxCommand::Work { every, once } => {
            let public = crate::base_url(&cfg.public_url, cfg.addr);
            let providers = cfg.messaging.providers(&public)?;
            loop {
                let now = crate::clock::now_unix();
                let pass =
                    crate::messages::worker::run_due(&db, &crypto, &providers, now, 50).await?;
                if pass.handled() > 0 {
                    println!(
                        "sent {}, deferred {}, suppressed {}, given up {}",
                        pass.sent, pass.deferred, pass.suppressed, pass.dead
                    );
                }
                if once {
                    return Ok(());
                }
                if pass.handled() >= 50 {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(every)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
        OutboxCommand::Status => {
            let counts: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT channel, state, COUNT(*) FROM outbox GROUP BY channel, state
                 ORDER BY channel, state",
            )
            .fetch_all(db.pool())
            .await?;
            for (channel, state, n) in counts {
                println!("{channel:<6} {state:<10} {n}");
            }
            let dead: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT id, template, last_error FROM outbox WHERE state = 'dead'
                 ORDER BY created_at DESC LIMIT 20",
            )
            .fetch_all(db.pool())
            .await?;
            for (id, template, error) in dead {
                println!("given up: {id} {template}: {}", error.unwrap_or_default());
            }
            Ok(())
        }
    }
}

/// An operator command that reads or re-encrypts protected data, on the audit trail (the
/// actor is the command line; no PHI in `resource`).
pub async fn audit(
    db: &crate::db::Db,
    action: &'static str,
    resource: Option<&str>,
) -> anyhow::Result<()> {
    audit::record(
        db.pool(),
        audit::Event {
            actor: &Actor::system("cli"),
            tenant: None,
            patient: None,
            action,
            resource,
            outcome: Outcome::Success,
        },
    )
    .await?;
    Ok(())
}
