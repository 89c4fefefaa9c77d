//! `patriotpay incident …`: the commands' arguments, output (text, or JSON with `--json`) and
//! progress; what they do is `incident`.

use super::{Filter, Whom, Window};
use crate::config::Config;
use clap::{Args, Subcommand};

/// The window and filters shared by `scope` and `trace`.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// Start of the window: 2026-12-01T06:00:00Z, 2026-12-01 (midnight UTC) or unix seconds.
    #[arg(long, value_parser = super::parse_time)]
    pub since: i64,
    /// End of the window (included); default now.
    #[arg(long, value_parser = super::parse_time)]
    pub until: Option<i64>,
    /// Only events of this actor (`usr_…`, `user:usr_…`, `link:lnk_…`, `cli`…).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only events from this address.
    #[arg(long)]
    pub address: Option<String>,
    /// Only events about this practice (tenant id, `ten_…`).
    #[arg(long)]
    pub practice: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl WindowArgs {
    fn window(&self, now: i64) -> Window {
        Window {
            since: self.since,
            until: self.until.unwrap_or(now),
        }
    }

    fn filter(&self) -> Filter {
        Filter {
            actor: self.actor.clone(),
            address: self.address.clone(),
            practice: self.practice.clone(),
        }
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum IncidentCommand {
    /// From the audit log: which accounts acted, which patients' records were viewed or
    /// changed, which practices are affected.
    Scope(WindowArgs),
    /// The audit trail and alerts of the window as one timeline.
    Trace(WindowArgs),
    /// End sessions: of everyone (`--all`, pay-link visitors included), one account (`--user`)
    /// or everyone with a grant in a practice (`--practice`); Cognito refresh tokens revoked too.
    RevokeSessions {
        #[arg(long, conflicts_with_all = ["user", "practice"])]
        all: bool,
        /// An account id (`usr_…`).
        #[arg(long, conflicts_with = "practice")]
        user: Option<String>,
        /// A practice (tenant id, `ten_…`).
        #[arg(long)]
        practice: Option<String>,
        /// Say what would be done and to how many; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Cognito sign-outs per second at most (its API is rate limited).
        #[arg(long, default_value_t = 5)]
        per_second: u32,
    },
    /// The affected-client report for a practice: which patients, which data, when, the
    /// notification deadline (60 days from discovery) and the letter drafted. Prints JSON.
    Notify {
        /// The practice (tenant id, `ten_…`).
        #[arg(long)]
        practice: String,
        #[arg(long, value_parser = super::parse_time)]
        since: i64,
        #[arg(long, value_parser = super::parse_time)]
        until: Option<i64>,
        /// When the incident was discovered (the deadline counts from it); default now.
        #[arg(long, value_parser = super::parse_time)]
        discovered: Option<i64>,
        /// Also write the report as a printable page to this file.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// A Markdown post-mortem drafted from the record: scope, timeline, actions taken, and the
    /// sections to write.
    Postmortem {
        #[arg(long, value_parser = super::parse_time)]
        since: i64,
        #[arg(long, value_parser = super::parse_time)]
        until: Option<i64>,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Replace what the portal holds: new data-key versions (re-wrapped under `--master-key`),
    /// every live pay link retired and a new one texted, API keys given a grace window, the key
    /// cache flushed everywhere. Resumable: a rerun with the same `--run` skips steps done.
    Rotate {
        /// Only this practice (tenant id, `ten_…`); default everything.
        #[arg(long)]
        practice: Option<String>,
        /// Re-wrap every data key under this master key (a KMS key id or ARN, or `local`).
        #[arg(long, conflicts_with = "practice")]
        master_key: Option<String>,
        /// Also rotate the blind-index keys (long on a large database).
        #[arg(long)]
        index_keys: bool,
        /// Hours the practices' current API keys keep working.
        #[arg(long, default_value_t = 24)]
        api_key_grace_hours: u32,
        /// Retire the links without texting new ones (patients ask their practice).
        #[arg(long)]
        no_relink: bool,
        /// The run's name, which progress is kept under (default: the scope and today's date).
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Every account of everyone (`--all`) or of a practice (`--practice`) must set a new
    /// password; sessions end. Resumable: a rerun with the same `--run` skips accounts done.
    ForcePasswordReset {
        #[arg(long, conflicts_with = "practice")]
        all: bool,
        /// A practice (tenant id, `ten_…`).
        #[arg(long)]
        practice: Option<String>,
        /// The run's name, which progress is kept under (default: the scope and today's date).
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        dry_run: bool,
        /// Identity-provider resets per second at most.
        #[arg(long, default_value_t = 5)]
        per_second: u32,
    },
}

pub async fn run(cfg: &Config, action: IncidentCommand) -> anyhow::Result<()> {
    let (db, crypto) = crate::open_storage(cfg).await?;
    let now = crate::clock::now_unix();
    match action {
        IncidentCommand::Scope(a) => {
            let (window, filter) = (a.window(now), a.filter());
            let s = super::scope(&db, window, &filter).await?;
            let what = format!(
                "{}..{} actors={} patients={}",
                window.since,
                window.until,
                s.actors.len(),
                s.patients.len()
            );
            crate::cli::audit(&db, "incident.scope", Some(&what)).await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            print_scope(&s);
        }
        IncidentCommand::Trace(a) => {
            let (window, filter) = (a.window(now), a.filter());
            let items = super::trace(&db, window, &filter).await?;
            let what = format!("{}..{} items={}", window.since, window.until, items.len());
            crate::cli::audit(&db, "incident.trace", Some(&what)).await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for i in &items {
                    println!("{}", i.line());
                }
            }
        }
        IncidentCommand::RevokeSessions {
            all,
            user,
            practice,
            dry_run,
            per_second,
        } => {
            let whom = match (all, user, practice) {
                (true, None, None) => Whom::All,
                (false, Some(u), None) => Whom::User(u),
                (false, None, Some(p)) => Whom::Practice(p),
                _ => anyhow::bail!(
                    "name whose sessions end: --all, --user usr_… or --practice ten_…"
                ),
            };
            let accounts = super::accounts_of(&db, &whom).await?;
            let cognito: Vec<_> = accounts.iter().filter(|a| a.subject.is_some()).collect();
            println!(
                "{} {} account(s) ({} at Cognito){}.",
                if dry_run {
                    "Would end the sessions of"
                } else {
                    "Ending the sessions of"
                },
                accounts.len(),
                cognito.len(),
                if matches!(whom, Whom::All) {
                    ", and every pay-link visitor's session"
                } else {
                    ""
                }
            );
            if dry_run {
                return Ok(());
            }
            let ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
            super::revoke_portal_sessions(&db, &whom, &ids, now).await?;
            println!("Portal sessions ended: each is refused at its next request.");
            if !cognito.is_empty() {
                let identity = crate::identity_provider(cfg, &db, &crypto).await?;
                let bar = indicatif::ProgressBar::new(cognito.len() as u64);
                let pause = std::time::Duration::from_millis(1000 / u64::from(per_second.max(1)));
                let mut failed = 0;
                for a in cognito {
                    let (id, user) = (&a.id, crate::ids::UserId::from_db(a.id.clone()));
                    let email = crate::accounts::open_email(&crypto, &user, &a.email_ct).await?;
                    if let Err(e) = identity.sign_out_everywhere(email.expose()).await {
                        failed += 1;
                        bar.suspend(|| eprintln!("{id}: Cognito sign-out failed: {e}"));
                    }
                    bar.inc(1);
                    tokio::time::sleep(pause).await;
                }
                bar.finish_and_clear();
                println!("Cognito refresh tokens revoked; {failed} failed (rerun to retry them).");
            }
            crate::cli::audit(&db, "incident.revoke-sessions", Some(&whom.describe())).await?;
        }
        IncidentCommand::Notify {
            practice,
            since,
            until,
            discovered,
            html,
        } => {
            let tenant = crate::ids::TenantId::parse(practice.trim())
                .ok_or_else(|| anyhow::anyhow!("--practice is a practice id (ten_…)"))?;
            let window = Window {
                since,
                until: until.unwrap_or(now),
            };
            let discovered = discovered.unwrap_or(now);
            let report =
                super::notify::report(&db, &crypto, &tenant, window, discovered, now).await?;
            let what = format!("{tenant} patients={}", report.affected.len());
            crate::cli::audit(&db, "incident.notify", Some(&what)).await?;
            if let Some(path) = html {
                std::fs::write(&path, super::notify::html(&report))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                eprintln!("Printable report written to {}.", path.display());
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        IncidentCommand::Postmortem { since, until, out } => {
            let window = Window {
                since,
                until: until.unwrap_or(now),
            };
            let md = super::postmortem::draft(&db, window, now).await?;
            crate::cli::audit(&db, "incident.postmortem", None).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, md)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    println!("Post-mortem drafted in {}.", path.display());
                }
                None => print!("{md}"),
            }
        }
        IncidentCommand::Rotate {
            practice,
            master_key,
            index_keys,
            api_key_grace_hours,
            no_relink,
            run,
            dry_run,
        } => {
            let only = match practice {
                Some(p) => Some(
                    crate::ids::TenantId::parse(p.trim())
                        .ok_or_else(|| anyhow::anyhow!("--practice is a practice id (ten_…)"))?,
                ),
                None => None,
            };
            let run = run.unwrap_or_else(|| {
                let scope = only.as_ref().map_or("all", |t| t.as_str());
                format!("rotate:{scope}:{}", &super::show_time(now)[..10])
            });
            let opts = super::rotate::Options {
                run: run.clone(),
                only,
                master_key,
                index_keys,
                api_key_grace: i64::from(api_key_grace_hours) * 3600,
                relink: !no_relink,
                dry_run,
            };
            let public = crate::cli::public_base(cfg);
            let say = |s: &str| eprintln!("{s}…");
            let r = super::rotate::rotate(&db, &crypto, &public, &opts, &say, now).await?;
            print_rotation(&run, &r, dry_run);
            if !dry_run {
                let what = format!(
                    "{run} data_keys={} links_retired={} links_texted={} api_keys={}",
                    r.data_keys.len(),
                    r.links_retired,
                    r.links_texted,
                    r.api_keys
                );
                crate::cli::audit(&db, "incident.rotate", Some(&what)).await?;
            }
        }
        IncidentCommand::ForcePasswordReset {
            all,
            practice,
            run,
            dry_run,
            per_second,
        } => {
            let whom = match (all, practice) {
                (true, None) => Whom::All,
                (false, Some(p)) => Whom::Practice(p),
                _ => anyhow::bail!("name whose passwords to reset: --all or --practice ten_…"),
            };
            let run = run.unwrap_or_else(|| {
                let day = super::show_time(now);
                format!("force-password-reset:{}:{}", whom.describe(), &day[..10])
            });
            let identity = crate::identity_provider(cfg, &db, &crypto).await?;
            let public = crate::cli::public_base(cfg);
            let pause = std::time::Duration::from_millis(1000 / u64::from(per_second.max(1)));
            let bar = indicatif::ProgressBar::new(0);
            let tick = |done: usize, of: usize| {
                bar.set_length(of as u64);
                bar.set_position(done as u64);
            };
            let report = super::reset::force_password_reset(
                &db,
                &crypto,
                identity.as_ref(),
                (&whom, &run),
                &public,
                pause,
                dry_run,
                &tick,
                now,
            )
            .await?;
            bar.finish_and_clear();
            println!(
                "{} {} account(s) under run {run:?} ({} staff, {} local members, {} at Cognito); {} done before.",
                if dry_run { "Would reset" } else { "Reset" },
                report.accounts,
                report.staff,
                report.members_local,
                report.cognito,
                report.already_done
            );
            for f in &report.failed {
                eprintln!("failed: {f}");
            }
            if !dry_run {
                let what = format!(
                    "{run} accounts={} failed={}",
                    report.accounts,
                    report.failed.len()
                );
                crate::cli::audit(&db, "incident.force-password-reset", Some(&what)).await?;
            }
            anyhow::ensure!(
                report.failed.is_empty(),
                "{} account(s) failed: rerun with --run {run:?} to retry them",
                report.failed.len()
            );
        }
    }
    Ok(())
}

fn print_scope(s: &super::Scope) {
    use super::show_time;
    println!(
        "Window {} .. {}",
        show_time(s.window.since),
        show_time(s.window.until)
    );
    println!("\nAccounts that acted ({}):", s.actors.len());
    for a in &s.actors {
        println!(
            "  {:<40} {:>6} events  {:>5} patients  {} .. {}",
            a.actor,
            a.events,
            a.patients,
            show_time(a.first),
            show_time(a.last)
        );
    }
    println!(
        "\nPatients whose records were viewed or changed ({}):",
        s.patients.len()
    );
    for p in &s.patients {
        println!(
            "  {:<40} {:<38} {:>5} events  {} .. {}  by {}",
            p.patient,
            p.practice.as_deref().unwrap_or("-"),
            p.events,
            show_time(p.first),
            show_time(p.last),
            p.actors.join(", ")
        );
    }
    println!("\nPractices affected ({}):", s.practices.len());
    for p in &s.practices {
        println!("  {p}");
    }
}

fn print_rotation(run: &str, r: &super::rotate::Report, dry: bool) {
    let would = if dry { "would be " } else { "" };
    println!(
        "Run {run:?}{}",
        if dry {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    if !r.done_before.is_empty() {
        println!("  done by an earlier run: {}", r.done_before.join(", "));
    }
    for (t, v) in &r.data_keys {
        println!("  {t}: data key version {v} {would}made; new writes use it");
    }
    if let Some(n) = r.rewrapped {
        println!("  {n} data key(s) {would}re-wrapped under the new master key");
    }
    if let Some(n) = r.index_rotations {
        println!("  {n} blind-index key rotation(s)");
    }
    if dry {
        println!(
            "  {} live pay link(s) would be retired; up to {} new link(s) to be texted (none to \
             patients who opted out or have no mobile number)",
            r.links_retired, r.links_texted
        );
    } else {
        println!(
            "  {} live pay link(s) retired; {} new link(s) texted, {} not (paid, opted out or no \
             mobile number)",
            r.links_retired, r.links_texted, r.links_not_texted
        );
    }
    if r.api_keys > 0 {
        println!(
            "  {} API key(s) {would}refused from {}: tell these practices to make new keys (Staff → API keys): {}",
            r.api_keys,
            super::show_time(r.api_keys_until),
            r.api_key_practices.join(", ")
        );
    }
    if let Some(e) = r.cache_flush_epoch {
        println!(
            "  key cache flush requested (epoch {e}): every server drops cached keys within 5 s"
        );
    }
    println!("\nSecrets only their provider can roll (do these by hand):");
    for item in super::rotate::PROVIDER_CHECKLIST {
        println!("  - {item}");
    }
}
