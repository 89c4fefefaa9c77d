//! The staff import page (issue 12): a practice admin uploads a statement file (multipart, its
//! token checked by the CSRF layer from the body's `csrf` part), sees the dry run, confirms the
//! kept file, reads the report (or downloads its rejections as CSV) and the practice's import
//! history (each view audited).
//!
//! **Where the file waits.** Between the dry run and "Confirm import" the file is kept on disk
//! under `<data dir>/uploads/`, named by a random id held in the typed session, encrypted with the
//! practice's field key (`FieldCrypto`, bound to the practice and the id), never in the database
//! and never in clear: it holds PHI. A file survives a restart, costs no memory while it waits and
//! works behind several servers sharing the data directory, which an in-memory map would not. It
//! is claimed (renamed) before it is read, so two confirmations cannot import it twice, and
//! deleted after confirming; one kept longer than an hour is refused and removed, and `sweep`
//! (every five minutes in `serve`, and on each upload, confirmation and page view) deletes any
//! file left over an hour (a leftover of a confirmation cut short too).

use super::practice as resource;
use super::{actor_id, ask, forbidden, meta, GuarantorAdmins};
use crate::access::{self, Action};
use crate::accounts::{self, Account};
use crate::billing;
use crate::crypto::FieldAad;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, CsrfMultipart, StaffWith};
use crate::http::session::{ImportOutcome, PendingImport, Sess};
use crate::http::{see_other, see_other_query, tr, AppState, RequestContext};
use crate::ids::TenantId;
use crate::intake::run::{self, Options, Source, Summary};
use crate::intake::Format;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::ImportUploadForm;
use patriotpay_app::vm_import::{ImportPageVm, ImportPracticeVm, ImportResultVm, ImportRunVm};
use patriotpay_app::Url;
use std::path::{Path, PathBuf};

/// How long an uploaded file is kept for confirmation.
const KEEP_SECS: i64 = 3600;
/// Runs shown in the history.
const HISTORY: i64 = 50;

/// The page's query: which practice to show.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    practice: String,
}

/// Where uploaded files wait for confirmation.
pub fn uploads_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("uploads")
}

/// The kept file of `id` (an id we made: 32 hex digits, never a path from the request).
fn kept_path(state: &AppState, id: &str) -> Option<PathBuf> {
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| uploads_dir(&state.data_dir).join(format!("{id}.enc")))
}

fn aad<'a>(tenant: &'a TenantId, id: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: "staff_uploads",
        column: "file",
        row: id,
    }
}

/// Deletes kept files older than `KEEP_SECS` (by the file's own time: the wall clock, not the
/// request clock tests move). Best effort: a file that cannot be read or removed is logged.
pub async fn sweep(dir: PathBuf) {
    let swept = tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let limit = std::time::Duration::from_secs(KEEP_SECS as u64);
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > limit);
            if old {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(error = %err, "an expired upload could not be removed");
                }
            }
        }
    });
    if let Err(e) = swept.await {
        tracing::warn!(error = %e, "upload sweep failed");
    }
}

/// Removes a kept file (gone already is fine).
async fn discard(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "a kept upload could not be removed"),
    }
}

/// The practices this admin may import into (by the policy), with their names.
pub(super) async fn importable(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
) -> Result<Vec<ImportPracticeVm>> {
    let mut out: Vec<ImportPracticeVm> = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        let may = access::decide(
            &account.principal,
            Action::ImportStatements,
            &resource(t),
            ctx.now,
        )
        .allowed();
        if !may || out.iter().any(|p| p.id == t.as_str()) {
            continue;
        }
        let name = billing::tenant(&state.db, t)
            .await?
            .map(|x| x.name)
            .unwrap_or_else(|| t.to_string());
        out.push(ImportPracticeVm {
            id: t.to_string(),
            name,
        });
    }
    Ok(out)
}

/// The practice `raw` names, if the policy lets this admin import into it. Otherwise the refusal
/// is asked of the policy (so it is audited) and answered 403: the practice is not secret.
async fn permitted(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    raw: &str,
    event: &'static str,
) -> Result<TenantId> {
    let tenant = TenantId::parse(raw.trim()).ok_or(AppError::Forbidden)?;
    let may = access::decide(
        &account.principal,
        Action::ImportStatements,
        &resource(&tenant),
        ctx.now,
    )
    .allowed();
    if may {
        return Ok(tenant);
    }
    // The unknown practice is named in no event: the refusal is recorded against one of the
    // account's own practices instead.
    let known = billing::tenant(&state.db, &tenant).await?.is_some();
    let on = if known {
        tenant.clone()
    } else {
        account
            .principal
            .grants
            .iter()
            .find_map(|g| g.tenant.clone())
            .unwrap_or_else(|| accounts::platform().clone())
    };
    let refused = ask(
        state,
        ctx,
        account,
        Action::ImportStatements,
        resource(&on),
        event,
        None,
    )
    .await;
    Err(match refused {
        Err(e) => forbidden(e),
        Ok(_) => AppError::Forbidden,
    })
}

fn outcome(tenant: &TenantId, dry_run: bool, s: Summary) -> ImportOutcome {
    ImportOutcome {
        tenant_id: tenant.to_string(),
        dry_run,
        committed: s.committed,
        created: s.created,
        updated: s.updated,
        unchanged: s.unchanged,
        rejected: s.rejected,
        rejections: s.rejections,
        fatal: s.fatal,
    }
}

fn result_vm(o: &ImportOutcome) -> ImportResultVm {
    ImportResultVm {
        dry_run: o.dry_run,
        committed: o.committed,
        created: o.created,
        updated: o.updated,
        unchanged: o.unchanged,
        rejected: o.rejected,
        rejections: o.rejections.clone(),
        fatal: o.fatal.clone(),
    }
}

/// One run of the import over a file held in memory, as this staff member.
async fn run_import<R>(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    tenant: &TenantId,
    (format, file): (Format, R),
    dry_run: bool,
    partial: bool,
) -> Result<Summary>
where
    R: AsRef<[u8]> + Send + 'static,
{
    let opts = Options {
        tenant: tenant.clone(),
        format,
        dry_run,
        partial,
        source: Source::Staff,
        actor: ctx.actor(actor_id(&account.id)),
        now: ctx.now,
        alerts: state.alerts.clone(),
        public_url: state.public_url.clone(),
    };
    let reader = std::io::Cursor::new(file);
    run::import(&state.db, state.crypto.clone(), reader, &opts, |_| {})
        .await
        .map_err(|e| AppError::Internal(e.into()))
}

/// The format a file's name says: `.csv` or `.json`, any case.
fn format_of(name: &str) -> Option<(Format, &'static str)> {
    let ext = Path::new(name).extension()?.to_str()?;
    if ext.eq_ignore_ascii_case("csv") {
        Some((Format::Csv, "csv"))
    } else if ext.eq_ignore_ascii_case("json") {
        Some((Format::Json, "json"))
    } else {
        None
    }
}

/// Back to the page for `tenant` with a notice.
async fn back_with(session: &Sess, tenant: &TenantId, key: &str) -> Result<Response> {
    session.notice(key).await?;
    Ok(see_other_query(
        Url::StaffImport,
        "practice",
        tenant.as_str(),
    ))
}

/// `POST /staff/import`: a dry run of the uploaded file, which is then kept (encrypted) for
/// "Confirm import".
pub async fn upload(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfMultipart(mut form): CsrfMultipart,
) -> Result<Response> {
    let mut practice = String::new();
    let mut file: Option<(String, axum::body::Bytes)> = None;
    // A body sent without a length fails here once past the limit: the same 413 page as a
    // declared length over it gets.
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::BadRequest
        }
    };
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some(ImportUploadForm::PRACTICE) => {
                practice = field.text().await.map_err(unreadable)?;
            }
            Some(ImportUploadForm::FILE) => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(unreadable)?;
                file = Some((name, bytes));
            }
            _ => {}
        }
    }
    let tenant = permitted(
        &state,
        &ctx,
        &account,
        &practice,
        "statements.import.upload",
    )
    .await?;
    sweep(uploads_dir(&state.data_dir)).await;
    let Some((name, bytes)) = file.filter(|(n, b)| !n.is_empty() && !b.is_empty()) else {
        return back_with(&session, &tenant, "import-err-missing").await;
    };
    let Some((format, format_name)) = format_of(&name) else {
        return back_with(&session, &tenant, "import-err-format").await;
    };
    let summary = run_import(
        &state,
        &ctx,
        &account,
        &tenant,
        (format, bytes.clone()),
        true,
        false,
    )
    .await?;
    let dry_run = outcome(&tenant, true, summary);
    // An earlier upload waiting in this session is replaced.
    if let Some(old) = session.data().await?.import_pending {
        if let Some(p) = kept_path(&state, &old.id) {
            discard(&p).await;
        }
    }
    if dry_run.fatal.is_some() {
        // Nothing could be imported from it: not kept, no confirmation offered.
        session
            .update(|d| {
                d.import_pending = None;
                d.import_result = Some(dry_run);
            })
            .await?;
        return Ok(see_other_query(
            Url::StaffImport,
            "practice",
            tenant.as_str(),
        ));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sealed = state.crypto.encrypt(aad(&tenant, &id), &bytes).await?;
    let path = kept_path(&state, &id)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("upload id malformed")))?;
    let dir = uploads_dir(&state.data_dir);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        std::fs::create_dir_all(&dir)?;
        crate::crypto::write_secret_file(&path, &sealed)
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
    .map_err(AppError::Internal)?;
    let pending = PendingImport {
        id,
        tenant_id: tenant.to_string(),
        format: format_name.to_owned(),
        kept_at: ctx.now,
        dry_run,
    };
    session
        .update(|d| {
            d.import_pending = Some(pending);
            d.import_result = None;
        })
        .await?;
    Ok(see_other_query(
        Url::StaffImport,
        "practice",
        tenant.as_str(),
    ))
}

/// Takes the kept file of `pending` for good: renamed first (only one confirmation can win),
/// read, deleted, decrypted. `None` when it is gone or too old.
async fn claim(
    state: &AppState,
    ctx: &RequestContext,
    tenant: &TenantId,
    pending: &PendingImport,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let Some(path) = kept_path(state, &pending.id) else {
        return Ok(None);
    };
    if ctx.now - pending.kept_at > KEEP_SECS {
        discard(&path).await;
        return Ok(None);
    }
    let claimed = path.with_extension(format!("claimed-{}", uuid::Uuid::new_v4().simple()));
    if tokio::fs::rename(&path, &claimed).await.is_err() {
        return Ok(None);
    }
    let sealed = tokio::fs::read(&claimed).await;
    discard(&claimed).await;
    let sealed = sealed.map_err(|e| AppError::Internal(e.into()))?;
    let plain = state
        .crypto
        .decrypt(aad(tenant, &pending.id), &sealed)
        .await?;
    Ok(Some(plain))
}

/// `POST /staff/import/confirm`: imports the kept file for real (all or nothing unless
/// "take the good ones" is ticked), then shows the report.
pub async fn confirm(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<ImportUploadForm>,
) -> Result<Response> {
    sweep(uploads_dir(&state.data_dir)).await;
    let Some(pending) = session.data().await?.import_pending else {
        session.notice("import-err-expired").await?;
        return Ok(see_other(Url::StaffImport));
    };
    // The role is asked again: it may have been taken away since the upload.
    let tenant = permitted(
        &state,
        &ctx,
        &account,
        &pending.tenant_id,
        "statements.import.confirm",
    )
    .await?;
    session.update(|d| d.import_pending = None).await?;
    let format = if pending.format == "json" {
        Format::Json
    } else {
        Format::Csv
    };
    let Some(file) = claim(&state, &ctx, &tenant, &pending).await? else {
        return back_with(&session, &tenant, "import-err-expired").await;
    };
    let partial = form.partial == "on";
    let summary = run_import(
        &state,
        &ctx,
        &account,
        &tenant,
        (format, file),
        false,
        partial,
    )
    .await?;
    let done = outcome(&tenant, false, summary);
    session.update(|d| d.import_result = Some(done)).await?;
    Ok(see_other_query(
        Url::StaffImport,
        "practice",
        tenant.as_str(),
    ))
}

/// Who ran an import, worded: a staff member's display name, "API key" or "command line".
async fn who(state: &AppState, actor: &str) -> Result<String> {
    if let Some(user) = actor
        .strip_prefix("user:")
        .and_then(crate::ids::UserId::parse)
    {
        return Ok(accounts::display_name(&state.db, &user)
            .await?
            .unwrap_or_else(|| tr().t("staff-unnamed")));
    }
    Ok(if actor.starts_with("apikey:") {
        tr().t("import-who-api")
    } else {
        tr().t("import-who-cli")
    })
}

type HistoryRow = (i64, String, String, i64, i64, i64, i64, i64);

/// The practice's last runs, newest first.
async fn history(state: &AppState, tenant: &TenantId) -> Result<Vec<ImportRunVm>> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT started_at, actor, source, dry_run, created, updated, unchanged, rejected
         FROM imports WHERE tenant_id = $1
         ORDER BY started_at DESC, finished_at DESC LIMIT $2",
    )
    .bind(tenant.as_str())
    .bind(HISTORY)
    .fetch_all(state.db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (at, actor, source, dry_run, created, updated, unchanged, rejected) in rows {
        out.push(ImportRunVm {
            when: crate::clock::display_utc_minute(at),
            who: who(state, &actor).await?,
            source: tr().t(&format!("import-source-{source}")),
            dry_run: dry_run != 0,
            created,
            updated,
            unchanged,
            rejected,
        });
    }
    Ok(out)
}

/// `GET /staff/import`: the practice (asked in the query, else the first), its dry run waiting,
/// the last report and the history; the view is a permit's audit event.
pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    Query(q): Query<ImportQuery>,
) -> Result<Response> {
    sweep(uploads_dir(&state.data_dir)).await;
    let practices = importable(&state, &ctx, &account).await?;
    let raw = match (q.practice.trim(), practices.first()) {
        ("", Some(p)) => p.id.clone(),
        (raw, _) => raw.to_owned(),
    };
    let tenant = permitted(&state, &ctx, &account, &raw, "statements.imports.view").await?;
    let _permit = ask(
        &state,
        &ctx,
        &account,
        Action::ImportStatements,
        resource(&tenant),
        "statements.imports.view",
        None,
    )
    .await
    .map_err(forbidden)?;
    let data = session.data().await?;
    let mine = |t: &str| t == tenant.as_str();
    let vm = ImportPageVm {
        csrf: session.csrf_token().await?,
        notice: session.take_flash().await?.map(|f| tr().t(&f.key)),
        selected: tenant.to_string(),
        practices,
        pending: data
            .import_pending
            .as_ref()
            .filter(|p| mine(&p.tenant_id))
            .map(|p| result_vm(&p.dry_run)),
        report: data
            .import_result
            .as_ref()
            .filter(|r| mine(&r.tenant_id))
            .map(result_vm),
        history: history(&state, &tenant).await?,
    };
    Ok(Html(patriotpay_app::staff_import::import_page(meta(), vm)).into_response())
}

/// `GET /staff/import/report`: the rejections of the run on the page (the dry run waiting, else
/// the last import) as CSV: statement, place, field, reason. No values from the file: the
/// reasons name places and fields only, and statement ids are the sender's opaque keys.
pub async fn report(
    session: Sess,
    StaffWith(_, _): StaffWith<GuarantorAdmins>,
) -> Result<Response> {
    let data = session.data().await?;
    let run = data
        .import_pending
        .map(|p| p.dry_run)
        .or(data.import_result)
        .ok_or(AppError::NotFound)?;
    let body = super::import_report::csv(&run.rejections);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"import-report.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
