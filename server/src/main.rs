//! The `patriotpay` binary: parses settings and runs a subcommand (`serve` by default).
#![forbid(unsafe_code)]

use clap::Parser;
use patriotpay::config::{
    AuditCommand, Cli, Command, KeysCommand, PaymentsCommand, PracticesCommand, UsersCommand,
};
use patriotpay::ids::TenantId;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = cli.config.monitoring.log_format;
    tracing_subscriber::registry()
        .with(filter)
        .with(patriotpay::observe::log_layer(
            format,
            std::io::stderr,
            ansi,
        ))
        .init();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patriotpay: {e:#}");
            std::process::ExitCode::from(patriotpay::cli::exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.config;
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Migrate => {
            let grants = patriotpay::migrate(&cfg).await?;
            println!("Migrations applied.");
            if let Some(grants) = grants {
                print!("{grants}");
            }
        }
        Command::Keys { action } => keys(&cfg, action).await?,
        Command::Users { action } => users(&cfg, action).await?,
        Command::DemoLink { patient } => demo_print(&cfg, patient, false).await?,
        Command::DemoInvite { patient } => demo_print(&cfg, patient, true).await?,
        Command::Payments { action } => payments(&cfg, action).await?,
        Command::Practices { action } => practices(&cfg, action).await?,
        Command::Audit { action } => audit(&cfg, action).await?,
        Command::Apikeys { action } => patriotpay::cli::apikeys(&cfg, action).await?,
        Command::Outbox { action } => patriotpay::cli::outbox(&cfg, action).await?,
        Command::Incident { action } => patriotpay::incident::cli::run(&cfg, action).await?,
        c @ Command::Import { .. } => patriotpay::cli::import(&cfg, c).await?,
        Command::Serve { demo } => {
            let mut cfg = cfg;
            cfg.messaging.dev_outbox = demo;
            let running = patriotpay::start(&cfg).await?;
            println!("PatriotPay portal:        {}", running.public_url);
            println!("Sandbox card processor:   http://{}", running.sandbox_addr);
            if demo {
                let st = &running.state;
                let tenant = patriotpay::demo::ensure(&st.db, &st.crypto).await?;
                let (help, url) = patriotpay::demo::link_text(
                    &st.db,
                    &st.crypto,
                    &tenant,
                    1,
                    &running.public_url,
                    st.link_ttl_days,
                )
                .await?;
                println!("{help}");
                println!("Guarantor invitations for the household of patients 3 to 5: `cargo run -- demo-invite --patient 4`.");
                println!(
                    "Texts and emails are kept, not sent; read them at {}/dev/outbox (this machine only).",
                    running.public_url
                );
                println!("Open this demo pay link in a browser (more: `cargo run -- demo-link --patient 2`):");
                println!("{url}");
            } else {
                println!(
                    "No demo data loaded; start with --demo for a demo practice and pay link."
                );
            }
            wait_for_shutdown(&running.state.crypto).await?;
            println!("Shutting down.");
            running.stop().await;
        }
    }
    Ok(())
}

/// Prints a demo pay link (or, with `invite`, a guarantor invitation) for demo patient `n`;
/// the URL alone is the last line, for scripts.
async fn demo_print(
    cfg: &patriotpay::config::Config,
    n: usize,
    invite: bool,
) -> anyhow::Result<()> {
    let (db, crypto) = patriotpay::open_storage(cfg).await?;
    let tenant = patriotpay::demo::ensure(&db, &crypto).await?;
    let public = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.addr));
    let public = public.trim_end_matches('/');
    let (help, url) = if invite {
        patriotpay::demo::invite_text(&db, &crypto, &tenant, n, public).await?
    } else {
        patriotpay::demo::link_text(&db, &crypto, &tenant, n, public, cfg.link_ttl_days).await?
    };
    println!("{help}");
    println!("{url}");
    Ok(())
}

async fn payments(cfg: &patriotpay::config::Config, action: PaymentsCommand) -> anyhow::Result<()> {
    let (db, crypto) = patriotpay::open_storage(cfg).await?;
    use patriotpay::payments::jobs;
    let now = patriotpay::clock::now_unix();
    let (since, until, dry_run) = match action {
        PaymentsCommand::Reconcile {
            since,
            until,
            dry_run,
        } => (since, until, dry_run),
        PaymentsCommand::Events { all } => {
            let rows = jobs::list(&db, all.then_some(now - 24 * 3600)).await?;
            for r in &rows {
                println!(
                    "{}  {:<44} {:<7} attempts {:>2}  received {}{}{}",
                    r.event_id,
                    r.event_type,
                    r.state,
                    r.attempts,
                    patriotpay::clock::display_date_unix(r.received_at),
                    if r.state == "pending" {
                        format!("  next try in {} s", (r.run_after - now).max(0))
                    } else {
                        String::new()
                    },
                    match (&r.last_error, &r.outcome) {
                        (Some(e), _) => format!("  last error: {e}"),
                        (None, Some(o)) => format!("  outcome: {o}"),
                        _ => String::new(),
                    }
                );
            }
            println!("{} event(s).", rows.len());
            return Ok(());
        }
        PaymentsCommand::RetryEvent { id } => {
            anyhow::ensure!(
                jobs::retry(&db, &id, now).await?,
                "no waiting or dead event {id} (done events are not worked again)"
            );
            println!("Event {id} will be worked again by the running server within seconds.");
            return Ok(());
        }
    };
    let processor = patriotpay::processor_for_cli(cfg, &db)?;
    let start = since.midnight().assume_utc().unix_timestamp();
    let end = until
        .map(|d| {
            d.next_day()
                .unwrap_or(d)
                .midnight()
                .assume_utc()
                .unix_timestamp()
        })
        .unwrap_or_else(|| patriotpay::clock::now_unix() + 1);
    anyhow::ensure!(start < end, "--since must be before --until");
    let bar = patriotpay::keys::progress(0, "reconciling");
    // A dispute it records alerts the practice, as the webhook would have.
    let alerts = patriotpay::alerts::AlertSink::configured(cfg, Some(crypto.clone()));
    // A repair books through the group writer, as the server does.
    let group = patriotpay::group_commit::GroupWriter::start(db.clone());
    let report = patriotpay::payments::reconcile::run(
        &db,
        &group,
        processor.as_ref(),
        &alerts,
        patriotpay::payments::reconcile::Window {
            since: start,
            until: end,
        },
        dry_run,
        patriotpay::clock::now_unix(),
        &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "Checked {} checkout(s) without a payment and {} payment(s) of ours, and the processor's {} payment(s), {} refund(s) and {} dispute(s){}.",
        report.checkouts_checked,
        report.payments_checked,
        report.processor_payments_checked,
        report.processor_refunds_checked,
        report.processor_disputes_checked,
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for f in &report.findings {
        let mark = if f.repaired { "repaired" } else { "DIFFERS " };
        println!("{mark} {}: {}", f.kind, f.detail);
    }
    let flagged = report.flagged().count();
    println!(
        "{} repaired, {flagged} difference(s) for a person to look at.",
        report.findings.len() - flagged
    );
    anyhow::ensure!(flagged == 0, "{flagged} difference(s) need a person");
    Ok(())
}

async fn practices(
    cfg: &patriotpay::config::Config,
    action: PracticesCommand,
) -> anyhow::Result<()> {
    let (db, _crypto) = patriotpay::open_storage(cfg).await?;
    match action {
        PracticesCommand::List => {
            let rows = patriotpay::billing::practices(&db).await?;
            for (id, name, bank) in &rows {
                let ways = if *bank { "cards, bank debits" } else { "cards" };
                println!("{id}  {name}  ({ways})");
            }
            println!("{} practice(s).", rows.len());
        }
        PracticesCommand::BankDebits { practice, state } => {
            let tenant = tenant_arg(Some(practice))?
                .ok_or_else(|| anyhow::anyhow!("--practice is required"))?;
            let on = state == "on";
            anyhow::ensure!(
                patriotpay::billing::set_bank_debit(&db, &tenant, on).await?,
                "no practice {tenant}"
            );
            patriotpay::audit::record(
                db.pool(),
                patriotpay::audit::Event {
                    actor: &patriotpay::audit::Actor::system("cli"),
                    tenant: Some(&tenant),
                    patient: None,
                    action: if on {
                        "practice.bank_debits.on"
                    } else {
                        "practice.bank_debits.off"
                    },
                    resource: Some(tenant.as_str()),
                    outcome: patriotpay::audit::Outcome::Success,
                },
            )
            .await?;
            println!(
                "{tenant}: bank debits {} for new checkouts.",
                if on { "offered" } else { "no longer offered" }
            );
        }
        PracticesCommand::PlanMinimum { practice, amount } => {
            let tenant = tenant_arg(Some(practice))?
                .ok_or_else(|| anyhow::anyhow!("--practice is required"))?;
            let min = patriotpay::money::Money::parse_dollars(&amount)
                .ok()
                .filter(|m| m.is_positive())
                .ok_or_else(|| {
                    anyhow::anyhow!("{amount:?} is not an amount in dollars, e.g. 25.00")
                })?;
            anyhow::ensure!(
                patriotpay::payments::plans::set_minimum_instalment(&db, &tenant, min).await?,
                "no practice {tenant}"
            );
            patriotpay::audit::record(
                db.pool(),
                patriotpay::audit::Event {
                    actor: &patriotpay::audit::Actor::system("cli"),
                    tenant: Some(&tenant),
                    patient: None,
                    action: "practice.plan_minimum.set",
                    resource: Some(tenant.as_str()),
                    outcome: patriotpay::audit::Outcome::Success,
                },
            )
            .await?;
            println!("{tenant}: payment-plan instalments of at least {min} for new plans.");
        }
    }
    Ok(())
}

async fn audit(cfg: &patriotpay::config::Config, action: AuditCommand) -> anyhow::Result<()> {
    use patriotpay::audit::{anchor, chain, export, verify};
    if let AuditCommand::Verify { file: Some(path) } = &action {
        // Offline: the export alone, no database and no key.
        let f = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let bar = patriotpay::keys::progress(f.metadata()?.len(), "verifying");
        let report = verify::verify_export(std::io::BufReader::new(f), &|n| bar.set_position(n))?;
        bar.finish_and_clear();
        return print_verify(&report, true);
    }
    let (db, crypto) = patriotpay::open_storage(cfg).await?;
    let provider = crypto.provider().as_ref();
    match action {
        AuditCommand::Verify { .. } => {
            let bar = patriotpay::keys::progress(0, "verifying");
            let report =
                verify::verify_db(&db, provider, &cfg.audit_anchor_path(), &|done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await?;
            bar.finish_and_clear();
            print_verify(&report, false)?;
        }
        AuditCommand::Anchor => {
            let now = patriotpay::clock::now_unix();
            let alerts = patriotpay::alerts::AlertSink::configured(cfg, Some(crypto.clone()));
            // What is committed is sealed first (safe beside a running server's sealer).
            chain::seal_pending(&db, &alerts, now, &chain::Sealing::default()).await?;
            let path = cfg.audit_anchor_path();
            let cp = anchor::append(&db, provider, &path, now).await?;
            println!(
                "Anchored seq {} hash {} in {} (key {}).",
                cp.seq,
                cp.hash,
                path.display(),
                cp.key_id
            );
        }
        AuditCommand::Export { since, until, out } => {
            let start = since.midnight().assume_utc().unix_timestamp();
            let end = until
                .and_then(|d| d.next_day())
                .map(|d| d.midnight().assume_utc().unix_timestamp())
                .unwrap_or_else(|| patriotpay::clock::now_unix() + 1);
            anyhow::ensure!(start < end, "--since must be before --until");
            // The export carries actor ids and addresses: it is on the trail itself.
            let window = format!(
                "since={since} until={}",
                until.map(|d| d.to_string()).unwrap_or_default()
            );
            patriotpay::cli::audit(&db, "audit.export", Some(&window)).await?;
            let report = match &out {
                Some(path) => {
                    let mut opts = std::fs::OpenOptions::new();
                    opts.write(true).create_new(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt;
                        opts.mode(0o600);
                    }
                    let f = opts
                        .open(path)
                        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                    let mut w = std::io::BufWriter::new(f);
                    export::export(&db, start, end, &mut w).await?
                }
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    export::export(&db, start, end, &mut w).await?
                }
            };
            eprintln!(
                "Exported seqs {} to {}: {} event(s), {} gap(s).",
                report.first_seq, report.last_seq, report.events, report.gaps
            );
        }
    }
    Ok(())
}

/// Prints a verification's outcome; an error (non-zero exit) when broken.
fn print_verify(r: &patriotpay::audit::verify::Report, export: bool) -> anyhow::Result<()> {
    if let Some(b) = &r.broken {
        println!("BROKEN at {b}");
        if r.extra.len() > 1 {
            println!(
                "{} events the chain does not cover: seqs {:?}",
                r.extra.len(),
                r.extra
            );
        }
        anyhow::bail!("the audit chain does not verify");
    }
    println!(
        "OK: {} events sealed, {} not yet sealed, head seq {} hash {}",
        r.events_sealed, r.unsealed, r.head_seq, r.head_hash
    );
    if export {
        println!(
            "{} gap(s); an export of seqs {} to {}: compare its last hash with a checkpoint or the database",
            r.gaps,
            r.start_seq + 1,
            r.head_seq
        );
    } else {
        println!(
            "{} gap(s); {} checkpoint(s) verified{}",
            r.gaps,
            r.checkpoints_ok,
            if r.no_anchor_file {
                " (no anchor file: a removal of the newest events could not be seen)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn tenant_arg(t: Option<String>) -> anyhow::Result<Option<TenantId>> {
    t.map(|t| {
        TenantId::parse(&t).ok_or_else(|| anyhow::anyhow!("{t} is not a practice id (ten_…)"))
    })
    .transpose()
}

async fn keys(cfg: &patriotpay::config::Config, action: KeysCommand) -> anyhow::Result<()> {
    let (db, crypto) = patriotpay::open_storage(cfg).await?;
    let dry = |d: bool| if d { " (dry run: nothing changed)" } else { "" };
    match action {
        KeysCommand::Rotate { tenant, dry_run } => {
            let s = patriotpay::keys::rotate(&db, &crypto, tenant_arg(tenant)?.as_ref(), dry_run)
                .await?;
            for (t, v) in &s.rotated {
                println!("{t}: new data key version {v}");
            }
            println!("Rotated {} practice(s){}.", s.rotated.len(), dry(dry_run));
        }
        KeysCommand::Rewrap { to, dry_run } => {
            let s = patriotpay::keys::rewrap(&db, &crypto, &to, dry_run).await?;
            println!(
                "Examined {} data keys: {} re-wrapped under {to}, {} already under it{}.",
                s.examined,
                s.rewrapped,
                s.already_under_target,
                dry(dry_run)
            );
        }
        KeysCommand::Reencrypt {
            tenant,
            batch,
            dry_run,
        } => {
            anyhow::ensure!(batch > 0, "--batch must be positive");
            let started = std::time::Instant::now();
            // Every value is decrypted on the way: the run is on the audit trail, start and end.
            patriotpay::cli::audit(&db, "keys.reencrypt.start", None).await?;
            let s = patriotpay::keys::reencrypt(
                &db,
                &crypto,
                tenant_arg(tenant)?.as_ref(),
                batch,
                dry_run,
            )
            .await?;
            let counts = format!(
                "rows={} reencrypted={} current={}{}",
                s.rows,
                s.values_reencrypted,
                s.values_current,
                if dry_run { " dry-run" } else { "" }
            );
            patriotpay::cli::audit(&db, "keys.reencrypt.end", Some(&counts)).await?;
            println!(
                "Scanned {} rows: {} values re-encrypted, {} already current, in {:.1}s{}.",
                s.rows,
                s.values_reencrypted,
                s.values_current,
                started.elapsed().as_secs_f64(),
                dry(dry_run)
            );
        }
        KeysCommand::RotateIndex {
            tenant,
            batch,
            grace_secs,
            max_batches,
        } => {
            anyhow::ensure!(batch > 0, "--batch must be positive");
            let started = std::time::Instant::now();
            let only = tenant_arg(tenant)?;
            // Every indexed value is decrypted to be hashed again: on the audit trail, start
            // and end.
            let scope = match &only {
                Some(t) => format!("practice={t}"),
                None => "practice=all".to_owned(),
            };
            patriotpay::cli::audit(&db, "keys.rotate-index.start", Some(&scope)).await?;
            let s = patriotpay::keys::rotate_index(
                &db,
                &crypto,
                &patriotpay::keys::RotateIndexOptions {
                    only,
                    batch,
                    grace: std::time::Duration::from_secs(grace_secs),
                    max_batches,
                },
            )
            .await?;
            let counts = format!(
                "rotations={} resumed={} built={} switched={} caught_up={} copies_rekeyed={} copies_dropped={} retired={}{}",
                s.rotations.len(),
                s.resumed,
                s.values_built,
                s.values_switched,
                s.caught_up,
                s.copies_rekeyed,
                s.copies_dropped,
                s.retired,
                if s.stopped_early { " stopped-early" } else { "" }
            );
            patriotpay::cli::audit(&db, "keys.rotate-index.end", Some(&counts)).await?;
            for (t, from, to) in &s.rotations {
                println!("{t}: blind-index key version {from} -> {to}");
            }
            if s.stopped_early {
                println!(
                    "Stopped after {} batch(es): {} values built so far; lookups still use the old keys. Run again to continue.",
                    max_batches.unwrap_or_default(),
                    s.values_built
                );
            } else {
                println!(
                    "Rotated {} blind-index key(s){}: {} values built, {} switched, {} caught up after the switch, {} sign-in failure records re-keyed and {} naming no account dropped; old keys destroyed, in {:.1}s.",
                    s.retired,
                    if s.resumed > 0 { " (continuing an earlier run)" } else { "" },
                    s.values_built,
                    s.values_switched,
                    s.caught_up,
                    s.copies_rekeyed,
                    s.copies_dropped,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        KeysCommand::Status => {
            println!(
                "{:<38} {:<12} {:>7} {:<8} {:>10}  key",
                "practice", "purpose", "version", "provider", "values"
            );
            for k in patriotpay::keys::status(&db).await? {
                println!(
                    "{:<38} {:<12} {:>7} {:<8} {:>10}  {}",
                    k.tenant, k.purpose, k.version, k.provider, k.values, k.key_id
                );
            }
        }
        KeysCommand::FlushCache => {
            let epoch = patriotpay::crypto::FieldCrypto::request_flush_everywhere(&db).await?;
            println!("Flush requested (epoch {epoch}); running servers drop cached keys within 5 seconds.");
        }
    }
    Ok(())
}

async fn users(cfg: &patriotpay::config::Config, action: UsersCommand) -> anyhow::Result<()> {
    use patriotpay::access::Role;
    let (db, crypto) = patriotpay::open_storage(cfg).await?;
    let now = patriotpay::clock::now_unix();
    match action {
        UsersCommand::Add {
            email,
            role,
            practice,
            name,
        } => {
            let name = patriotpay::accounts::StaffName::parse(&name)?;
            let role = Role::parse(&role).filter(|r| r.is_staff()).ok_or_else(|| {
                anyhow::anyhow!("--role must be one of support-agent, practice-admin, security-officer, platform-admin, auditor")
            })?;
            let practice = tenant_arg(practice)?;
            if let Some(p) = &practice {
                anyhow::ensure!(
                    patriotpay::billing::tenant(&db, p).await?.is_some(),
                    "no practice with id {p}"
                );
            }
            let public = patriotpay::cli::public_base(cfg);
            let (_, token) = patriotpay::accounts::add_staff(
                &db,
                &crypto,
                &email,
                role,
                practice.as_ref(),
                Some(&name),
                Some(&public),
                now,
            )
            .await?;
            println!("Account created for {}.", email.trim());
            patriotpay::cli::tell_setup_link(cfg, &email, &token);
        }
        UsersCommand::List => {
            // Every account's email is opened to print it.
            patriotpay::cli::audit(&db, "users.list", None).await?;
            for u in patriotpay::accounts::list(&db, &crypto).await? {
                let state = if u.disabled {
                    "disabled"
                } else if u.enrolled {
                    "active"
                } else {
                    "invited"
                };
                println!("{:<40} {:<9} {}", u.email, state, u.roles.join(", "));
            }
        }
        UsersCommand::Rename { user, email, name } => {
            let name = patriotpay::accounts::StaffName::parse(&name)?;
            let id = match (user, email) {
                (Some(u), _) => patriotpay::ids::UserId::parse(&u),
                (None, Some(e)) => patriotpay::accounts::user_by_email(&db, &crypto, &e).await?,
                (None, None) => None,
            };
            let renamed = match &id {
                Some(id) => patriotpay::accounts::rename(&db, id, &name).await?,
                None => false,
            };
            anyhow::ensure!(renamed, "no staff account with that id or email");
            patriotpay::cli::audit(&db, "users.rename", id.as_ref().map(|u| u.as_str())).await?;
            println!("Renamed: patients now see \"{}\".", name.as_str());
        }
        UsersCommand::Reset { email } => {
            let identity = patriotpay::identity_provider(cfg, &db, &crypto).await?;
            let public = patriotpay::cli::public_base(cfg);
            match identity.force_reset(&email, Some(&public), now).await? {
                Some(token) => {
                    println!("Sessions ended. {email} must set a new password and authenticator.");
                    patriotpay::cli::tell_setup_link(cfg, &email, &token);
                }
                None => println!(
                    "Reset at the identity provider and signed out everywhere; the portal refuses {email} until the reset is done."
                ),
            }
        }
        UsersCommand::Disable { email } => {
            if patriotpay::accounts::disable(&db, &crypto, &email, now).await? {
                println!("Disabled {email}; its sessions end at their next request.");
            } else {
                anyhow::bail!("no enabled account with email {email}");
            }
        }
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM. SIGUSR1 empties the plaintext key cache at once (incident
/// response on this host; `keys flush-cache` reaches every host within seconds).
async fn wait_for_shutdown(crypto: &patriotpay::crypto::FieldCrypto) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return Ok(r?),
                _ = term.recv() => return Ok(()),
                _ = usr1.recv() => {
                    crypto.flush_cache();
                    tracing::warn!("plaintext key cache flushed (SIGUSR1)");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
