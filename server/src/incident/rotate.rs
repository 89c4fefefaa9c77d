//! `incident rotate`: what the portal itself holds replaced, one recorded step at a time so a
//! rerun of the same run resumes: new data-key versions (and every data key re-wrapped when a
//! new master key is named), blind-index keys when asked, every live pay link retired (the
//! visitor is told a new one is coming) with a new one texted through the outbox to patients
//! texted before, practices' API keys given a grace window, and the key cache flushed on every
//! server. Secrets the providers hold (the processor's webhook secret, Twilio's token, Cognito's
//! app client) cannot be rolled from here: the command prints them as the operator's checklist.

use crate::crypto::{random_token, FieldCrypto};
use crate::db::Db;
use crate::ids::{PatientId, StatementId, TenantId};
use crate::messages::pay_link::{text_pay_link, Kind, Texted};

/// What `revoked_reason` says of a link the rotation run `run` retired: the run's tag, so a
/// rerun finds (and relinks) exactly the links its first try retired.
pub fn rotated_tag(run: &str) -> String {
    format!("rotated:{run}")
}

/// The choices of one run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The run's name: its steps are recorded under it.
    pub run: String,
    /// Only this practice's keys, links and API keys (default: everything).
    pub only: Option<TenantId>,
    /// Re-wrap every data key under this master key (only without `only`).
    pub master_key: Option<String>,
    /// Also rotate the blind-index keys (long on a large database; resumable on its own).
    pub index_keys: bool,
    /// How long practices' current API keys keep working (seconds).
    pub api_key_grace: i64,
    /// Text patients their new link.
    pub relink: bool,
    pub dry_run: bool,
}

/// What a run did (or, dry, would do); steps an earlier run of the same name did are listed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub done_before: Vec<String>,
    /// (practice, new data-key version).
    pub data_keys: Vec<(String, u32)>,
    pub rewrapped: Option<u64>,
    pub index_rotations: Option<usize>,
    pub links_retired: u64,
    pub links_texted: u64,
    /// Statements paid since, or patients opted out or with no mobile number: no text.
    pub links_not_texted: u64,
    pub api_keys: u64,
    pub api_keys_until: i64,
    /// Practice ids whose API keys now expire, to tell them.
    pub api_key_practices: Vec<String>,
    pub cache_flush_epoch: Option<i64>,
}

/// The secrets only their provider can roll, with how: printed after every run.
pub const PROVIDER_CHECKLIST: &[&str] = &[
    "Stripe webhook signing secret: roll it on the endpoint in the Stripe dashboard with the old one \
     expiring in 24 hours; set PATRIOTPAY_WEBHOOK_SECRET to the new and \
     PATRIOTPAY_WEBHOOK_SECRET_PREVIOUS to the old, restart the servers one by one, and unset \
     the previous one when it expires.",
    "Stripe API key: roll it in the dashboard (PATRIOTPAY_STRIPE_SECRET_KEY[_FILE]), restart.",
    "Twilio: make a secondary auth token (or a new API key pair), set TWILIO_AUTH_TOKEN (or \
     TWILIO_API_KEY_SID/SECRET), restart, then promote it so the old one stops.",
    "Cognito: the app client has no secret; users' tokens end with `incident revoke-sessions` and \
     their passwords with `incident force-password-reset`.",
    "AWS: deactivate any access key that may have leaked (the servers use their task role); \
     a suspected KMS key: make a new one and run this command with --master-key.",
    "Database and SMTP passwords: change them at RDS and the mail provider, then in the \
     servers' secrets, and restart.",
];

/// Step names, in the order they run.
const STEPS: [&str; 6] = [
    "data-keys",
    "rewrap",
    "index-keys",
    "pay-links",
    "api-keys",
    "flush",
];

async fn done_steps(db: &Db, run: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT step, detail FROM incident_steps WHERE run = $1")
        .bind(run)
        .fetch_all(db.pool())
        .await
}

async fn mark(db: &Db, run: &str, step: &str, detail: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO incident_steps (run, step, done_at, detail) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run, step) DO NOTHING",
    )
    .bind(run)
    .bind(step)
    .bind(now)
    .bind(detail)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Runs the steps of `opts.run` not done yet; `say` is told each step as it starts.
pub async fn rotate(
    db: &Db,
    crypto: &FieldCrypto,
    public_url: &str,
    opts: &Options,
    say: &dyn Fn(&str),
    now: i64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        opts.master_key.is_none() || opts.only.is_none(),
        "--master-key re-wraps every practice's keys: leave out --practice"
    );
    anyhow::ensure!(
        opts.api_key_grace >= 0,
        "the grace window cannot be negative"
    );
    let done = done_steps(db, &opts.run).await?;
    let is_done = |s: &str| done.iter().any(|(d, _)| d == s);
    let mut report = Report {
        done_before: STEPS
            .iter()
            .filter(|s| is_done(s))
            .map(|s| (*s).to_owned())
            .collect(),
        ..Report::default()
    };
    let dry = opts.dry_run;
    for step in STEPS {
        // Pay links are looked at again: a relink cut short is finished.
        if is_done(step) && step != "pay-links" {
            continue;
        }
        let detail = match step {
            "data-keys" => {
                say("New data-key versions");
                let s = crate::keys::rotate(db, crypto, opts.only.as_ref(), dry).await?;
                report.data_keys = s.rotated;
                format!("tenants={}", report.data_keys.len())
            }
            "rewrap" => {
                let Some(to) = &opts.master_key else { continue };
                say("Re-wrapping data keys under the new master key");
                let s = crate::keys::rewrap(db, crypto, to, dry).await?;
                report.rewrapped = Some(s.rewrapped);
                format!("rewrapped={} to={to}", s.rewrapped)
            }
            "index-keys" => {
                if !opts.index_keys {
                    continue;
                }
                say("Rotating blind-index keys");
                if dry {
                    report.index_rotations = Some(0);
                    continue;
                }
                let s = crate::keys::rotate_index(
                    db,
                    crypto,
                    &crate::keys::RotateIndexOptions {
                        only: opts.only.clone(),
                        batch: 500,
                        grace: std::time::Duration::from_secs(5),
                        max_batches: None,
                    },
                )
                .await?;
                report.index_rotations = Some(s.rotations.len());
                format!("rotations={}", s.rotations.len())
            }
            "pay-links" => {
                // Retiring is marked done before any relinking, so a rerun never retires the
                // new links; the run's tag lets it finish the relinking a crash cut short.
                let tag = rotated_tag(&opts.run);
                if !is_done(step) {
                    say("Retiring every live pay link");
                    report.links_retired =
                        retire_links(db, opts.only.as_ref(), &tag, dry, now).await?;
                    if !dry {
                        let detail = format!("retired={}", report.links_retired);
                        mark(db, &opts.run, step, &detail, now).await?;
                    }
                }
                if opts.relink {
                    say("Texting new pay links");
                    let (texted, not) = if dry {
                        (would_relink(db, opts.only.as_ref(), &tag, now).await?, 0)
                    } else {
                        relink(db, crypto, public_url, &tag, now).await?
                    };
                    report.links_texted = texted;
                    report.links_not_texted = not;
                }
                continue;
            }
            "api-keys" => {
                say("Giving API keys a grace window");
                report.api_keys_until = now + opts.api_key_grace;
                let (n, practices) =
                    expire_api_keys(db, opts.only.as_ref(), report.api_keys_until, dry).await?;
                report.api_keys = n;
                report.api_key_practices = practices;
                format!("keys={n} until={}", report.api_keys_until)
            }
            _ => {
                say("Flushing the key cache on every server");
                if dry {
                    continue;
                }
                crypto.flush_cache();
                let epoch = FieldCrypto::request_flush_everywhere(db).await?;
                report.cache_flush_epoch = Some(epoch);
                format!("epoch={epoch}")
            }
        };
        if !dry {
            mark(db, &opts.run, step, &detail, now).await?;
        }
    }
    Ok(report)
}

/// Every live link (of one practice, or all) revoked with the run's `tag`; how many.
async fn retire_links(
    db: &Db,
    only: Option<&TenantId>,
    tag: &str,
    dry: bool,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let scope = |n: u8| match only {
        Some(_) => format!(" AND tenant_id = ${n}"),
        None => String::new(),
    };
    if dry {
        let q = format!(
            "SELECT COUNT(*) FROM pay_links WHERE revoked_at IS NULL AND expires_at > $1{}",
            scope(2)
        );
        let mut q = sqlx::query_scalar::<_, i64>(&q).bind(now);
        if let Some(t) = only {
            q = q.bind(t.as_str());
        }
        return Ok(u64::try_from(q.fetch_one(db.pool()).await?).unwrap_or(0));
    }
    let q = format!(
        "UPDATE pay_links SET revoked_at = $1, revoked_reason = $2
         WHERE revoked_at IS NULL AND expires_at > $1{}",
        scope(3)
    );
    let mut q = sqlx::query(&q).bind(now).bind(tag);
    if let Some(t) = only {
        q = q.bind(t.as_str());
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// Statements texted before (so their patient expects texts): a pay-link text in the outbox.
const TEXTED_BEFORE: &str = "EXISTS (SELECT 1 FROM outbox o
                       WHERE o.statement_id = s.id AND o.template = 'pay-link')";

/// How many statements a run would text a new link (dry run, before anything is retired): those
/// with a live link in scope, texted before and not paid.
async fn would_relink(
    db: &Db,
    only: Option<&TenantId>,
    tag: &str,
    now: i64,
) -> anyhow::Result<u64> {
    let scope = if only.is_some() {
        " AND s.tenant_id = $3"
    } else {
        ""
    };
    // A rerun's dry run also counts what its first try retired and did not relink.
    let q = format!(
        "SELECT DISTINCT s.id FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE ((l.revoked_at IS NULL AND l.expires_at > $1) OR l.revoked_reason = $2)
           AND {TEXTED_BEFORE}{scope}"
    );
    let mut q = sqlx::query_scalar::<_, String>(&q).bind(now).bind(tag);
    if let Some(t) = only {
        q = q.bind(t.as_str());
    }
    let mut n = 0;
    let mut conn = db.pool().acquire().await?;
    for id in q.fetch_all(db.pool()).await? {
        let statement = StatementId::from_db(id);
        if crate::billing::balance(&mut *conn, &statement)
            .await?
            .cents()
            > 0
        {
            n += 1;
        }
    }
    Ok(n)
}

/// A new link for each statement whose link the run tagged `tag` retired, that still has no
/// live link and that was texted before (so its patient expects texts), texted through the
/// outbox. Statements paid since, or whose patient opted out or has no mobile number, get none
/// (a link no one is sent is not kept). A rerun skips statements relinked already.
async fn relink(
    db: &Db,
    crypto: &FieldCrypto,
    public_url: &str,
    tag: &str,
    now: i64,
) -> anyhow::Result<(u64, u64)> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT DISTINCT s.id, s.tenant_id, s.patient_id
         FROM pay_links l JOIN statements s ON s.id = l.statement_id
         WHERE l.revoked_reason = $1 AND {TEXTED_BEFORE}
           AND NOT EXISTS (SELECT 1 FROM pay_links n
                           WHERE n.statement_id = s.id AND n.revoked_at IS NULL
                             AND n.expires_at > $2)
         ORDER BY s.id"
    ))
    .bind(tag)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let bar = crate::keys::progress(rows.len() as u64, "relink");
    let (mut texted, mut not) = (0, 0);
    for (statement, tenant, patient) in rows {
        bar.inc(1);
        let (statement, tenant, patient) = (
            StatementId::from_db(statement),
            TenantId::from_db(tenant),
            PatientId::from_db(patient),
        );
        crypto.ready_field_key(&tenant).await?;
        let mut tx = db.begin_write().await?;
        if crate::billing::balance(&mut *tx, &statement).await?.cents() <= 0 {
            tx.rollback().await?;
            not += 1;
            continue;
        }
        let token = random_token();
        crate::messages::reminders::relink(&mut tx, &tenant, &statement, &token, now).await?;
        let sent = text_pay_link(
            &mut tx,
            crypto,
            &tenant,
            &patient,
            &statement,
            &token,
            public_url,
            Kind::PayLink,
            now,
        )
        .await?;
        if matches!(sent, Texted::Queued { .. }) {
            tx.commit().await?;
            texted += 1;
        } else {
            tx.rollback().await?;
            not += 1;
        }
    }
    bar.finish_and_clear();
    Ok((texted, not))
}

/// Live API keys (of one practice, or all) set to expire at `until` unless they expire sooner;
/// how many, and whose.
async fn expire_api_keys(
    db: &Db,
    only: Option<&TenantId>,
    until: i64,
    dry: bool,
) -> Result<(u64, Vec<String>), sqlx::Error> {
    let scope = if only.is_some() {
        " AND tenant_id = $2"
    } else {
        ""
    };
    let live = format!("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1){scope}");
    let q = format!("SELECT DISTINCT tenant_id FROM api_keys WHERE {live} ORDER BY tenant_id");
    let mut q = sqlx::query_scalar::<_, String>(&q).bind(until);
    if let Some(t) = only {
        q = q.bind(t.as_str());
    }
    let practices = q.fetch_all(db.pool()).await?;
    let count = format!("SELECT COUNT(*) FROM api_keys WHERE {live}");
    let mut c = sqlx::query_scalar::<_, i64>(&count).bind(until);
    if let Some(t) = only {
        c = c.bind(t.as_str());
    }
    let n = u64::try_from(c.fetch_one(db.pool()).await?).unwrap_or(0);
    if !dry {
        let q = format!("UPDATE api_keys SET expires_at = $1 WHERE {live}");
        let mut q = sqlx::query(&q).bind(until);
        if let Some(t) = only {
            q = q.bind(t.as_str());
        }
        q.execute(db.pool()).await?;
    }
    Ok((n, practices))
}
