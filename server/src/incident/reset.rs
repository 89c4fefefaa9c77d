//! `incident force-password-reset`: every chosen account must set a new password. Staff: the
//! identity provider's forced reset (local: sign-in refused until the emailed one-time set-up
//! link is used; Cognito: `AdminResetUserPassword`, signed out everywhere). Local members:
//! sign-in refused until a new password is set with an emailed code (`/account/forgot`), told by
//! email. Cognito members: Cognito's reset, their next sign-in needs Cognito's emailed code.
//! Every account's sessions end. Each account done is recorded under the run's name, so a rerun
//! of the same run resumes where it stopped.

use super::{Account, Whom};
use crate::accounts;
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::identity::IdentityProvider;
use crate::ids::UserId;
use crate::messages::{self, texts};

/// What a run did (or, dry, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub accounts: usize,
    pub already_done: usize,
    pub staff: usize,
    pub members_local: usize,
    pub cognito: usize,
    pub failed: Vec<String>,
}

/// The accounts of `whom` not done yet in `run`, and how many were.
async fn targets(db: &Db, whom: &Whom, run: &str) -> Result<(Vec<Account>, usize), sqlx::Error> {
    let all = super::accounts_of(db, whom).await?;
    let done: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM incident_progress WHERE run = $1")
            .bind(run)
            .fetch_all(db.pool())
            .await?;
    let before = all.len();
    let todo: Vec<Account> = all.into_iter().filter(|a| !done.contains(&a.id)).collect();
    let skipped = before - todo.len();
    Ok((todo, skipped))
}

/// Runs (or with `dry_run` counts) the reset of `whom` as run `run`; `tick` after each account.
#[allow(clippy::too_many_arguments)]
pub async fn force_password_reset(
    db: &Db,
    crypto: &FieldCrypto,
    identity: &dyn IdentityProvider,
    (whom, run): (&Whom, &str),
    public_url: &str,
    pause: std::time::Duration,
    dry_run: bool,
    tick: &dyn Fn(usize, usize),
    now: i64,
) -> anyhow::Result<Report> {
    let (targets, already_done) = targets(db, whom, run).await?;
    let mut report = Report {
        accounts: targets.len(),
        already_done,
        staff: targets.iter().filter(|t| t.staff).count(),
        members_local: targets
            .iter()
            .filter(|t| !t.staff && t.subject.is_none())
            .count(),
        cognito: targets.iter().filter(|t| t.subject.is_some()).count(),
        ..Report::default()
    };
    if dry_run {
        return Ok(report);
    }
    for (i, t) in targets.iter().enumerate() {
        let user = UserId::from_db(t.id.clone());
        let email = accounts::open_email(crypto, &user, &t.email_ct).await?;
        let done = if t.staff || t.subject.is_some() {
            let link_from = t.subject.is_none().then_some(public_url);
            let r = identity.force_reset(email.expose(), link_from, now).await;
            tokio::time::sleep(pause).await;
            r.map(|_| ()).map_err(|e| e.to_string())
        } else {
            reset_local_member(db, crypto, &user, email, public_url, now)
                .await
                .map_err(|e| e.to_string())
        };
        match done {
            Ok(()) => {
                accounts::revoke_sessions(db, &user, now).await?;
                sqlx::query(
                    "INSERT INTO incident_progress (run, user_id, done_at) VALUES ($1, $2, $3)",
                )
                .bind(run)
                .bind(&t.id)
                .bind(now)
                .execute(db.pool())
                .await?;
            }
            Err(e) => report.failed.push(format!("{}: {e}", t.id)),
        }
        tick(i + 1, targets.len());
    }
    Ok(report)
}

/// A local member: sign-in refused until a new password is set with an emailed code; told so.
async fn reset_local_member(
    db: &Db,
    crypto: &FieldCrypto,
    user: &UserId,
    email: crate::phi::Phi<String>,
    public_url: &str,
    now: i64,
) -> anyhow::Result<()> {
    let text = texts::reset_required_email(public_url);
    let sealed = accounts::seal_email(crypto, email, texts::RESET_REQUIRED, text, now).await?;
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET must_reset = 1 WHERE id = $1 AND kind = 'member'")
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    messages::queue(&mut tx, &sealed, now).await?;
    tx.commit().await?;
    Ok(())
}
