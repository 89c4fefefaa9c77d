//! A member pays one or several statements of one practice in one card payment: the form, the
//! return from the processor and the cancelled or declined answer.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, Member};
use super::member::*;
use super::patient::{amount_error, back_from_processor, start_checkout, Checkout, Payer};
use super::session::{Flash, PayErrors, PayItemError, Sess};
use super::{see_other, to_processor_checkout, AppState, RequestContext, Routes};
use crate::accounts::Account;
use crate::billing;
use crate::ids::{CheckoutId, StatementId, TenantId};
use crate::money::Money;
use crate::payments::{self, DeclineReason};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use patriotpay_app::forms::{household_pay as fields, ReturnQuery};
use patriotpay_app::urls::{Url, ANY};

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .form(Url::AccountPay, pay)
        .phi_page(Url::AccountPayReturn(ANY), pay_return)
        .phi_page(Url::AccountPayCancelled(ANY), pay_cancelled)
}

async fn send_back(session: &Sess, errors: PayErrors, back: Url<'_>) -> Result<Response> {
    session.update(|d| d.pay_errors = Some(errors)).await?;
    Ok(see_other(back))
}

/// Pays one or several statements in one card payment. The form sends `pay_<statement>=1` for
/// each statement chosen and `amount_<statement>` for its amount. Every statement is checked
/// by the policy and against its balance; any problem sends the whole form back, nothing started.
pub async fn pay(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let from = field(fields::FROM).and_then(StatementId::parse);
    let back = match &from {
        Some(s) => Url::AccountStatement(s.as_str()),
        None => Url::Account,
    };
    let mut chosen: Vec<StatementId> = vec![];
    for (k, v) in &pairs {
        if let Some(id) = fields::chosen_statement(k).and_then(StatementId::parse) {
            if v == fields::CHECKED && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
    }
    let mut errors = PayErrors::default();
    // Counted before any lookup, so an oversized form costs nothing.
    if chosen.len() > payments::MAX_ITEMS {
        errors.general = Some("account-pay-too-many".into());
        return send_back(&session, errors, back).await;
    }
    let mut items = vec![];
    let mut patients = vec![];
    let mut tenant: Option<TenantId> = None;
    for id in &chosen {
        let h = payable_statement(
            &state,
            &ctx,
            &who,
            id,
            "payment.checkout.ask",
            Some(id.as_str()),
        )
        .await?;
        let typed = field(&fields::amount_field(id.as_str())).unwrap_or("");
        let balance = billing::balance(state.db.pool(), id).await?;
        let kept: String = typed.chars().take(32).collect();
        let key = match Money::parse_payment(typed, balance) {
            Ok(m) => {
                items.push((id.clone(), m));
                None
            }
            Err(e) => Some(amount_error(e, balance).0.to_owned()),
        };
        errors.items.insert(
            id.to_string(),
            PayItemError {
                key,
                typed: kept,
                checked: true,
            },
        );
        if !patients.contains(&h.patient_id) {
            patients.push(h.patient_id.clone());
        }
        match &tenant {
            None => tenant = Some(h.tenant_id.clone()),
            Some(t) if *t != h.tenant_id => {
                errors.general = Some("account-pay-one-practice".into());
            }
            Some(_) => {}
        }
    }
    if chosen.is_empty() {
        errors.general = Some("account-pay-none".into());
    }
    let refused = errors.general.is_some() || errors.items.values().any(|i| i.key.is_some());
    let (Some(tenant), false) = (tenant, refused) else {
        if errors.general.is_none() {
            errors.general = Some("account-pay-check".into());
        }
        return send_back(&session, errors, back).await;
    };
    let plan = payments::CheckoutPlan {
        tenant,
        items,
        patients,
        link: None,
        user: Some(who.id.clone()),
        // The processor comes back to `Url::AccountPayReturn`/`…Cancelled`, under this prefix.
        return_prefix: Url::AccountPay.template(),
        instalment: None,
    };
    let actor = ctx.actor(actor_id(&who.id));
    let general = match start_checkout(&state, &plan, &actor).await? {
        Checkout::Started(url) => return Ok(to_processor_checkout(&url)),
        Checkout::Problem(key) => key,
    };
    errors.general = Some(general.into());
    send_back(&session, errors, back).await
}

/// A checkout this member started, every statement of which they may still pay (each asked of
/// the policy, with its audit event); 404 otherwise.
async fn own_checkout(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    raw: &str,
    event: &'static str,
) -> Result<payments::CheckoutRow> {
    let id = CheckoutId::parse(raw).ok_or(AppError::NotFound)?;
    let row = payments::find_checkout(&state.db, &id).await?;
    let Some(row) = row.filter(|r| r.user_id.as_ref() == Some(&who.id)) else {
        return Err(unseen(state, ctx, actor_id(&who.id), "checkout.not_found", raw).await);
    };
    for (statement, _) in payments::checkout_items(&state.db, &row.id).await? {
        payable_statement(state, ctx, who, &statement, event, Some(row.id.as_str())).await?;
    }
    Ok(row)
}

/// Where the processor sends the member after paying; the webhook records the payment.
pub async fn pay_return(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let checkout = own_checkout(&state, &ctx, &who, &raw, "payment.return.view").await?;
    let meta = meta(&session).await?;
    back_from_processor(&state, ctx.now, &checkout, &q, Payer::Member, meta).await
}

pub async fn pay_cancelled(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let checkout = own_checkout(&state, &ctx, &who, &raw, "payment.cancelled.view").await?;
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(Url::AccountReceipt(payment.as_str())));
    }
    let key = match payments::decline_reason(state.processor.as_ref(), &checkout)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?
    {
        Some(DeclineReason::InsufficientFunds) => "account-pay-insufficient",
        Some(DeclineReason::Generic) => "account-pay-declined",
        None => "account-pay-cancelled",
    };
    session.set_flash(Flash::key(key)).await?;
    Ok(see_other(Url::Account))
}
