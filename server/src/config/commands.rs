//! The command line: subcommands and their arguments (the settings every command shares are
//! `Config`, in the parent module).

use super::Config;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "patriotpay",
    version,
    about = "PatriotPay patient payment portal"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the portal (and, with the sandbox processor, its hosted card page). The default.
    Serve {
        /// Load the demo practice on first start and print a demo pay link.
        #[arg(long, env = "PATRIOTPAY_DEMO")]
        demo: bool,
    },
    /// Apply database migrations as the schema's owner (PATRIOTPAY_MIGRATE_DATABASE_URL, else
    /// DATABASE_URL) and exit; with PATRIOTPAY_SERVING_ROLE, grant that role what serving needs.
    Migrate,
    /// Manage encryption keys: rotate, rewrap, reencrypt, status, flush-cache.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Manage staff accounts: add (prints a one-time enrolment link), list, rename, disable.
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
    /// Print a fresh pay link for a demo patient; the URL alone is the last line.
    DemoLink {
        /// Which demo patient (1 to 6; 6 prefers Spanish).
        #[arg(long, default_value_t = 1)]
        patient: usize,
    },
    /// Print a guarantor invitation for a demo patient, as the practice would create one; the
    /// URL alone is the last line.
    DemoInvite {
        /// Which demo patient (1 to 6; 3, 4 and 5 are one household).
        #[arg(long, default_value_t = 4)]
        patient: usize,
    },
    /// Practices: list them, and switch the ways to pay they offer.
    Practices {
        #[command(subcommand)]
        action: PracticesCommand,
    },
    /// Payments: reconcile the ledger with the card processor.
    Payments {
        #[command(subcommand)]
        action: PaymentsCommand,
    },
    /// Load a practice's statements from a CSV or JSON file (see README, "Statement import
    /// formats"). All-or-nothing unless --partial. Exit code 0: imported (or a clean dry run);
    /// 2: statements refused (nothing written without --partial); 1: could not run.
    Import {
        /// The statement file (.csv or .json).
        file: std::path::PathBuf,
        /// Practice (tenant id, ten_…).
        #[arg(long)]
        practice: String,
        /// Report what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Take the good statements even if some are refused.
        #[arg(long)]
        partial: bool,
        /// The file's format, when its name does not end in .csv or .json.
        #[arg(long, value_parser = ["csv", "json"])]
        format: Option<String>,
    },
    /// Per-practice API keys for statement import.
    Apikeys {
        #[command(subcommand)]
        action: ApikeysCommand,
    },
    /// The message outbox: deliver it from a process of its own (run `serve` with
    /// PATRIOTPAY_OUTBOX_EVERY_SECS=0 then), or see what waits and what was given up.
    Outbox {
        #[command(subcommand)]
        action: OutboxCommand,
    },
    /// The audit log's hash chain: verify it, anchor its head, export a window.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// The incident plan: scope, trace, revoke-sessions (see README, "Incident response").
    Incident {
        #[command(subcommand)]
        action: crate::incident::cli::IncidentCommand,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum AuditCommand {
    /// Walk the chain, recompute every hash and check the anchor file's checkpoints; print OK
    /// or the first broken seq and why. Exits non-zero when broken.
    Verify {
        /// Verify an export (`audit export`) instead, offline: no database, no key.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Seal what is committed, then append a signed checkpoint of the chain's head to the anchor
    /// file (PATRIOTPAY_AUDIT_ANCHOR_FILE).
    Anchor,
    /// Write the sealed events of a window, with their chain, as JSON lines.
    Export {
        /// First day of the window (UTC), YYYY-MM-DD.
        #[arg(long, value_parser = parse_day)]
        since: time::Date,
        /// Last day of the window (UTC), YYYY-MM-DD; default today.
        #[arg(long, value_parser = parse_day)]
        until: Option<time::Date>,
        /// File to write (made owner-only; never overwritten). Default: standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum OutboxCommand {
    /// Deliver due messages until stopped (Ctrl-C), or once with --once.
    Work {
        /// Seconds between looks.
        #[arg(long, default_value_t = 5)]
        every: u64,
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Counts by channel and state, and the given-up messages' errors (no recipient or body).
    Status,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ApikeysCommand {
    /// Make an API key for a practice's billing system (statement import). Printed once.
    Create {
        /// Practice (tenant id, ten_…).
        #[arg(long)]
        practice: String,
        /// What uses the key, e.g. "Nightly export from AcmePM".
        #[arg(long)]
        label: String,
    },
    /// A practice's keys: id, label, first characters, made, last used, revoked.
    List {
        #[arg(long)]
        practice: String,
    },
    /// Revoke a key: requests presenting it are refused from now on.
    Revoke {
        #[arg(long)]
        practice: String,
        /// The key's id (key_…), as `apikeys list` shows it.
        id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum PracticesCommand {
    /// List practices: id, name, and whether they take bank debits.
    List,
    /// Offer (`on`) or stop offering (`off`) bank debits (ACH) beside cards in a practice's
    /// checkouts. With Stripe, US bank account must also be enabled in the Stripe dashboard.
    BankDebits {
        /// Practice (tenant id, ten_…).
        #[arg(long)]
        practice: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Set the smallest instalment a practice accepts in payment plans (dollars, e.g. 25.00).
    PlanMinimum {
        /// Practice (tenant id, ten_…).
        #[arg(long)]
        practice: String,
        amount: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum PaymentsCommand {
    /// Compare the processor's payments and refunds for a window with the ledger: book what is
    /// missing (audited as a repair), flag what differs, print a report. Exits non-zero when
    /// something differs that it could not repair.
    Reconcile {
        /// First day of the window (UTC), YYYY-MM-DD.
        #[arg(long, value_parser = parse_day)]
        since: time::Date,
        /// Last day of the window (UTC), YYYY-MM-DD; default today.
        #[arg(long, value_parser = parse_day)]
        until: Option<time::Date>,
        /// Report only: change nothing, raise no alert.
        #[arg(long)]
        dry_run: bool,
    },
    /// List processor events that are waiting for a retry or were given up (dead), with their
    /// last error.
    Events {
        /// Also list events handled successfully in the last day.
        #[arg(long)]
        all: bool,
    },
    /// Work a dead (or waiting) processor event again now, from its first attempt: after the
    /// cause of its alert is fixed.
    RetryEvent {
        /// The processor's event id (evt_…).
        id: String,
    },
}

/// `YYYY-MM-DD`, as the reconcile window is given.
fn parse_day(s: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, format).map_err(|_| format!("{s:?} is not a date like 2026-11-30"))
}

#[derive(Subcommand, Debug, Clone)]
pub enum UsersCommand {
    /// Create a local staff account and print its one-time enrolment link (valid 72 hours).
    Add {
        #[arg(long)]
        email: String,
        /// support-agent, practice-admin, security-officer, platform-admin or auditor.
        #[arg(long)]
        role: String,
        /// Practice (tenant id, ten_…) the role applies to; not for platform-admin.
        #[arg(long)]
        practice: Option<String>,
        /// The staff member's name as patients see it on "who viewed my record" (1 to 80
        /// characters; their own name, never a patient's).
        #[arg(long)]
        name: String,
    },
    /// Set a staff account's display name (audited). Accounts made before names existed show
    /// to patients as "a staff member of <practice>" until renamed.
    Rename {
        /// The account's id (usr_…).
        #[arg(long, required_unless_present = "email", conflicts_with = "email")]
        user: Option<String>,
        /// Or its email.
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: String,
    },
    /// List accounts with their roles.
    List,
    /// Force a password reset: local accounts get a new set-up link; Cognito users are reset
    /// at Cognito. Either way the portal refuses sign-in until the reset is done.
    Reset {
        #[arg(long)]
        email: String,
    },
    /// Disable an account and end its sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum KeysCommand {
    /// Add a new data-key version; new writes use it, old data still reads.
    Rotate {
        /// Only this practice (tenant id); default all.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-wrap every data key under another master key (e.g. a new KMS key after a compromise).
    Rewrap {
        /// Target key id, ARN or alias.
        #[arg(long)]
        to: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-encrypt field values under each practice's newest data key, in batches; resumable.
    Reencrypt {
        #[arg(long)]
        tenant: Option<String>,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        #[arg(long)]
        dry_run: bool,
    },
    /// Rotate the blind-index keys: build every index value under a new key beside the old
    /// ones (lookups keep working), switch over at once, then destroy the old key; resumable.
    RotateIndex {
        /// Only this practice (tenant id); default every practice and the platform.
        #[arg(long)]
        tenant: Option<String>,
        /// Rows per transaction while building.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Seconds to wait after the switch for requests that began before it, before the
        /// last look for rows written under the old key and its destruction.
        #[arg(long, default_value_t = 5)]
        grace_secs: u64,
        /// Stop after this many build batches (spread a long build over several runs; each
        /// run continues where the last stopped).
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Show data-key versions, which master key wraps each, and how many values use it.
    Status,
    /// Make every running server drop its cached plaintext data keys within seconds.
    FlushCache,
}
