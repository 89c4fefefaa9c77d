//! The practice admin's API keys for statement import: each practice's keys, making one (shown
//! once, in the answer to the form only) and revoking one. Each change is audited in its own
//! transaction.

use super::import::importable;
use super::{actor_id, ask_in, forbidden, meta, GuarantorAdmins};
use crate::access::Action;
use crate::apikeys::{self, ApiKeyError};
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, StaffWith};
use crate::http::session::Sess;
use crate::http::{see_other, tr, AppState, RequestContext};
use crate::ids::TenantId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{ApiKeyCreateForm, ApiKeyRevokeForm};
use patriotpay_app::vm_api_keys::{ApiKeyPracticeVm, ApiKeyVm, ApiKeysVm, NewKeyVm};
use patriotpay_app::Url;

impl From<ApiKeyError> for AppError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Db(d) => d.into(),
            ApiKeyError::Label => AppError::BadRequest,
            ApiKeyError::NoPractice => AppError::NotFound,
        }
    }
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| tr().t("apikeys-never"), crate::clock::display_date_unix)
}

/// The page's view model: every practice the admin may import into, with its keys.
async fn page_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    account: &crate::accounts::Account,
) -> Result<ApiKeysVm> {
    let mut practices = vec![];
    for p in importable(state, ctx, account).await? {
        let tenant = TenantId::from_db(p.id.clone());
        let keys = apikeys::list(&state.db, &tenant)
            .await?
            .into_iter()
            .map(|k| ApiKeyVm {
                id: k.id,
                label: k.label,
                prefix: k.prefix,
                created: when(Some(k.created_at)),
                last_used: when(k.last_used_at),
                revoked: k.revoked_at.map(|t| when(Some(t))),
                refused_from: k.expires_at.map(crate::clock::display_utc_minute),
                expired: k.expires_at.is_some_and(|t| t <= ctx.now),
            })
            .collect();
        practices.push(ApiKeyPracticeVm {
            id: p.id,
            name: p.name,
            keys,
        });
    }
    Ok(ApiKeysVm {
        csrf: session.csrf_token().await?,
        practices,
        ..Default::default()
    })
}

fn render(status: StatusCode, vm: ApiKeysVm) -> Response {
    (
        status,
        Html(patriotpay_app::staff_api_keys::api_keys(meta(), vm)),
    )
        .into_response()
}

pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
) -> Result<Response> {
    let mut vm = page_vm(&state, &ctx, &session, &account).await?;
    if let Some(f) = session.take_flash().await? {
        if f.key.starts_with("apikeys-") {
            vm.notice = Some(tr().t(&f.key));
        }
    }
    Ok(render(StatusCode::OK, vm))
}

/// The permit to manage a practice's keys (a practice admin of it), with the change's
/// transaction; a refusal is a 403.
async fn permit_in(
    state: &AppState,
    ctx: &RequestContext,
    account: &crate::accounts::Account,
    tenant: &TenantId,
    event: &'static str,
    resource: &str,
) -> Result<crate::db::WriteTx> {
    let on = super::practice(tenant);
    let (_permit, tx) = ask_in(
        state,
        ctx,
        account,
        Action::ImportStatements,
        on,
        event,
        Some(resource),
    )
    .await
    .map_err(forbidden)?;
    Ok(tx)
}

/// Makes a key: a practice admin of that practice only (the permit's event commits with the
/// key). The key is in this answer and nowhere else.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<ApiKeyCreateForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let mut tx = permit_in(
        &state,
        &ctx,
        &account,
        &tenant,
        "apikey.create",
        tenant.as_str(),
    )
    .await?;
    let by = actor_id(&account.id);
    match apikeys::create_in(&mut tx, &tenant, &form.label, &by, ctx.now).await {
        Ok((_, key)) => {
            tx.commit().await?;
            let mut vm = page_vm(&state, &ctx, &session, &account).await?;
            vm.new_key = Some(NewKeyVm {
                label: form.label.trim().to_owned(),
                key,
            });
            Ok(render(StatusCode::OK, vm))
        }
        Err(ApiKeyError::Label) => {
            // Nothing was made: the permit's event goes with the transaction.
            drop(tx);
            let mut vm = page_vm(&state, &ctx, &session, &account).await?;
            vm.error = Some((tenant.to_string(), tr().t("apikeys-err-label")));
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm))
        }
        Err(e) => Err(e.into()),
    }
}

/// Revokes one of a practice's keys (a practice admin of it only; audited with the change).
pub async fn revoke(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<GuarantorAdmins>,
    CsrfForm(form): CsrfForm<ApiKeyRevokeForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let mut tx = permit_in(
        &state,
        &ctx,
        &account,
        &tenant,
        "apikey.revoke",
        form.key.trim(),
    )
    .await?;
    if !apikeys::revoke_in(&mut tx, &tenant, form.key.trim(), ctx.now).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    session.notice("apikeys-revoked").await?;
    Ok(see_other(Url::StaffApiKeys))
}
