//! The account page: each person's open statements (own and dependants'), a statement with
//! clinical detail hidden where the policy says, one payment across several statements, the
//! return from the processor, and the receipt of how a payment split.

use super::account::*;
use super::error::AppError;
use super::session::{self as sess, Flash};
use super::{AppState, RequestContext};
use crate::access::{Action, Role};
use crate::accounts::Account;
use crate::audit::Outcome;
use crate::billing;
use crate::guarantors::{self};
use crate::ids::{CheckoutId, PaymentId, StatementId, TenantId};
use crate::money::{AmountError, Money};
use crate::payments::{self, DeclineReason};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use patriotpay_app::account as pages;
use patriotpay_app::vm::*;
use std::collections::BTreeMap;
use tower_sessions::Session;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct PayErrors {
    general: Option<String>,
    /// statement id → (error key, typed amount, checked)
    items: BTreeMap<String, (Option<String>, String, bool)>,
}

fn open_statement_vm(
    h: &billing::StatementHeader,
    name: &str,
    practice: &str,
    balance: Money,
    carried: Option<&(Option<String>, String, bool)>,
) -> OpenStatementVm {
    let error = carried.and_then(|(k, _, _)| k.as_ref()).map(|k| {
        if k == "pay-err-over" {
            tr().ta(k, &[("balance", &balance.to_string())])
        } else {
            tr().t(k)
        }
    });
    OpenStatementVm {
        id: h.id.to_string(),
        patient_name: name.to_owned(),
        practice_name: practice.to_owned(),
        statement_date: iso(&h.statement_date),
        due_date: iso(&h.due_date),
        balance: balance.to_string(),
        amount: carried
            .map(|(_, v, _)| v.clone())
            .unwrap_or_else(|| balance.plain()),
        checked: carried.is_some_and(|(_, _, c)| *c),
        paid_in_full: !balance.is_positive(),
        error,
    }
}

pub async fn home(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let vm = home_vm(&state, &ctx, &session, &who).await?;
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

/// Everything on the account page: each person's open statements (as far as the policy lets
/// this account see them), and the guarantors and invitations on the holder's own records.
pub(super) async fn home_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Session,
    who: &Account,
) -> Result<AccountHomeVm> {
    let now = state.clock.now();
    let errors: PayErrors = session
        .remove(sess::KEY_PAY_ERRORS)
        .await?
        .unwrap_or_default();
    let mut vm = AccountHomeVm {
        csrf: sess::csrf_token(session).await?,
        email: who.email(&state.crypto).await?.into_inner(),
        pay_error: errors.general.as_deref().map(|k| tr().t(k)),
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(session).await? {
        vm.notice = Some(tr().t(&f.key));
    }
    let mut total = Money::from_cents(0);
    for (role, tenant, patient) in people(who) {
        if !decide(state, who, Action::ViewBalance, &tenant, &patient, false).allowed() {
            continue;
        }
        let name = billing::first_name(&state.db, &state.crypto, &tenant, &patient).await?;
        let practice = practice_name(state, &tenant).await?;
        let mut statements = vec![];
        for (h, balance) in billing::statements_of(&state.db, &tenant, &patient).await? {
            if !balance.is_positive() {
                continue;
            }
            total = total.checked_add(balance).unwrap_or(total);
            statements.push(open_statement_vm(
                &h,
                name.expose(),
                &practice,
                balance,
                errors.items.get(h.id.as_str()),
            ));
        }
        audit_event(
            state,
            ctx,
            actor_id(&who.id),
            (Some(&tenant), Some(&patient)),
            "household.view",
            None,
            Outcome::Success,
        )
        .await?;
        // Guarantors are managed by adult patients (and the practice); a minor's are the
        // practice's to change.
        let grown = role == Role::Patient && adult(state, &tenant, &patient).await?;
        if grown {
            if decide(
                state,
                who,
                Action::InviteGuarantor,
                &tenant,
                &patient,
                false,
            )
            .allowed()
            {
                vm.can_invite
                    .push((patient.to_string(), name.expose().clone()));
            }
            if decide(
                state,
                who,
                Action::RevokeGuarantor,
                &tenant,
                &patient,
                false,
            )
            .allowed()
            {
                for g in guarantors::guarantors_of(&state.db, &state.crypto, &patient).await? {
                    vm.guarantors.push(GuarantorVm {
                        grant_id: g.grant_id.to_string(),
                        email: g.email.into_inner(),
                        patient_name: name.expose().clone(),
                        since: crate::clock::display_date_unix(g.since),
                    });
                }
                for (id, expires) in
                    guarantors::pending_invitations(&state.db, &patient, now).await?
                {
                    vm.invitations.push(InvitationVm {
                        id: id.to_string(),
                        patient_name: name.expose().clone(),
                        expires: crate::clock::display_date_unix(expires),
                    });
                }
            }
        }
        vm.groups.push(HouseholdGroupVm {
            patient_name: name.into_inner(),
            relation: if role == Role::Patient {
                Relation::Own
            } else {
                Relation::Dependant
            },
            statements,
        });
    }
    vm.total_due = total.to_string();
    Ok(vm)
}

/// The statement, if the member may see its amounts; 404 otherwise (a statement of someone
/// else looks exactly like one that does not exist).
async fn visible_statement(
    state: &AppState,
    who: &Account,
    raw: &str,
) -> Result<billing::StatementHeader> {
    let id = StatementId::parse(raw).ok_or(AppError::NotFound)?;
    let h = billing::statement_header(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !decide(
        state,
        who,
        Action::ViewStatementAmounts,
        &h.tenant_id,
        &h.patient_id,
        false,
    )
    .allowed()
    {
        return Err(AppError::NotFound);
    }
    Ok(h)
}

pub async fn statement(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let h = visible_statement(&state, &who, &raw).await?;
    let grown_up = adult(&state, &h.tenant_id, &h.patient_id).await?;
    let own = decide(
        &state,
        &who,
        Action::ViewCardDetails,
        &h.tenant_id,
        &h.patient_id,
        false,
    )
    .allowed();
    let lines = billing::lines(&state.db, &state.crypto, &h).await?;
    let paid = billing::payments(&state.db, &h.id).await?;
    let balance = billing::balance(state.db.pool(), &h.id).await?;
    let practice = practice_name(&state, &h.tenant_id).await?;
    let name = billing::first_name(&state.db, &state.crypto, &h.tenant_id, &h.patient_id).await?;
    let errors: PayErrors = session
        .remove(sess::KEY_PAY_ERRORS)
        .await?
        .unwrap_or_default();
    let mut some_hidden = false;
    let mut line_vms = Vec::with_capacity(lines.len());
    for l in &lines {
        let restricted = l.confidential || grown_up;
        let shown = decide(
            &state,
            &who,
            Action::ViewItemisedStatement,
            &h.tenant_id,
            &h.patient_id,
            restricted,
        )
        .allowed();
        some_hidden |= !shown;
        line_vms.push(AccountLineVm {
            service_date: iso(l.service_date.expose()),
            description: shown.then(|| l.description.expose().clone()),
            charge: l.charge.to_string(),
            insurance_paid: l.insurance_paid.to_string(),
            adjustment: l.adjustment.to_string(),
            responsibility: l.patient_responsibility.to_string(),
        });
    }
    let action = if some_hidden {
        "statement.amounts.view"
    } else {
        "statement.itemised.view"
    };
    audit_event(
        &state,
        &ctx,
        actor_id(&who.id),
        (Some(&h.tenant_id), Some(&h.patient_id)),
        action,
        Some(h.id.as_str()),
        Outcome::Success,
    )
    .await?;
    let sum = |f: fn(&billing::Line) -> Money| {
        Money::from_cents(lines.iter().map(|l| f(l).cents()).sum())
    };
    let vm = AccountStatementVm {
        csrf: sess::csrf_token(&session).await?,
        practice_name: practice.clone(),
        patient_name: name.expose().clone(),
        statement: open_statement_vm(
            &h,
            name.expose(),
            &practice,
            balance,
            errors.items.get(h.id.as_str()),
        ),
        lines: line_vms,
        totals: LineVm {
            charge: sum(|l| l.charge).to_string(),
            insurance_paid: sum(|l| l.insurance_paid).to_string(),
            adjustment: sum(|l| l.adjustment).to_string(),
            responsibility: sum(|l| l.patient_responsibility).to_string(),
            ..Default::default()
        },
        payments: paid
            .iter()
            .map(|p| {
                // The card is shown to the patient and to whoever paid with it, not to a
                // guarantor looking at the patient's own payments.
                let card = own || p.paid_by.as_ref() == Some(&who.id);
                PaymentVm {
                    date: crate::clock::display_date_unix(p.paid_at),
                    amount: p.amount.to_string(),
                    brand: if card {
                        p.card_brand.clone()
                    } else {
                        String::new()
                    },
                    last4: if card {
                        p.card_last4.clone()
                    } else {
                        String::new()
                    },
                }
            })
            .collect(),
        some_hidden,
    };
    Ok(Html(pages::statement(meta(&session).await?, vm)).into_response())
}

fn amount_error_key(e: AmountError) -> &'static str {
    match e {
        AmountError::Empty => "pay-err-empty",
        AmountError::Format => "pay-err-format",
        AmountError::Negative => "pay-err-negative",
        AmountError::Zero => "pay-err-zero",
        AmountError::OverBalance => "pay-err-over",
        AmountError::NothingDue => "pay-err-nothing-due",
    }
}

/// Pays one or several statements in one card payment. The form sends `pay_<statement>=1` for
/// each statement chosen and `amount_<statement>` for its amount. Every statement is checked
/// by the policy and against its balance; any problem sends the whole form back, nothing started.
pub async fn pay(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let who = match member_post(&state, &session, field("csrf").unwrap_or("")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let back = match field("from").and_then(StatementId::parse) {
        Some(s) => format!("/account/statements/{s}"),
        None => "/account".to_owned(),
    };
    let mut chosen: Vec<StatementId> = vec![];
    for (k, v) in &pairs {
        if let Some(id) = k.strip_prefix("pay_").and_then(StatementId::parse) {
            if v == "1" && !chosen.contains(&id) {
                chosen.push(id);
            }
        }
    }
    let mut errors = PayErrors::default();
    // Counted before any lookup, so an oversized form costs nothing.
    if chosen.len() > payments::MAX_ITEMS {
        errors.general = Some("account-pay-too-many".into());
        session.insert(sess::KEY_PAY_ERRORS, errors).await?;
        return Ok(see_other(&back));
    }
    let mut items = vec![];
    let mut patients = vec![];
    let mut tenant: Option<TenantId> = None;
    for id in &chosen {
        let h = billing::statement_header(&state.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            &state,
            &who,
            Action::MakePayment,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
        let typed = field(&format!("amount_{id}")).unwrap_or("");
        let balance = billing::balance(state.db.pool(), id).await?;
        let kept: String = typed.chars().take(32).collect();
        match Money::parse_payment(typed, balance) {
            Ok(m) => {
                items.push((id.clone(), m));
                errors.items.insert(id.to_string(), (None, kept, true));
            }
            Err(e) => {
                errors.items.insert(
                    id.to_string(),
                    (Some(amount_error_key(e).into()), kept, true),
                );
            }
        }
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
    } else if chosen.len() > payments::MAX_ITEMS {
        errors.general = Some("account-pay-too-many".into());
    }
    let refused = errors.general.is_some() || errors.items.values().any(|(k, _, _)| k.is_some());
    let (Some(tenant), false) = (tenant, refused) else {
        if errors.general.is_none() {
            errors.general = Some("account-pay-check".into());
        }
        session.insert(sess::KEY_PAY_ERRORS, errors).await?;
        return Ok(see_other(&back));
    };
    let plan = payments::CheckoutPlan {
        tenant,
        items,
        patients,
        link: None,
        user: Some(who.id.clone()),
        return_prefix: "/account/pay",
    };
    let actor = ctx.actor(actor_id(&who.id));
    let general = match payments::start_checkout(
        &state.db,
        state.processor.as_ref(),
        &plan,
        &state.public_url,
        &actor,
    )
    .await
    {
        Ok(url) => return Ok(see_other(&url)),
        Err(payments::PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "checkout could not be created");
            "pay-err-processor"
        }
        Err(payments::PaymentError::Pending) => "pay-err-pending",
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    errors.general = Some(general.into());
    session.insert(sess::KEY_PAY_ERRORS, errors).await?;
    Ok(see_other(&back))
}

/// A checkout this member started, every statement of which they may still pay; 404 otherwise.
async fn own_checkout(state: &AppState, who: &Account, raw: &str) -> Result<payments::CheckoutRow> {
    let id = CheckoutId::parse(raw).ok_or(AppError::NotFound)?;
    let row = payments::find_checkout(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.user_id.as_ref() != Some(&who.id) {
        return Err(AppError::NotFound);
    }
    for (statement, _) in payments::checkout_items(&state.db, &row.id).await? {
        let h = billing::statement_header(&state.db, &statement)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            state,
            who,
            Action::MakePayment,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
    }
    Ok(row)
}

#[derive(serde::Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    session_id: String,
}

/// Where the processor sends the member after paying; the webhook records the payment.
pub async fn pay_return(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let checkout = own_checkout(&state, &who, &raw).await?;
    let meta = meta(&session).await?;
    super::patient::back_from_processor(&state, &checkout, &q.session_id, "/account", meta).await
}

pub async fn pay_cancelled(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let checkout = own_checkout(&state, &who, &raw).await?;
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(&format!("/account/receipt/{payment}")));
    }
    let key = match payments::decline_reason(state.processor.as_ref(), &checkout)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?
    {
        Some(DeclineReason::InsufficientFunds) => "account-pay-insufficient",
        Some(DeclineReason::Generic) => "account-pay-declined",
        None => "account-pay-cancelled",
    };
    sess::set_flash(
        &session,
        Flash {
            key: key.into(),
            ..Default::default()
        },
    )
    .await?;
    Ok(see_other("/account"))
}

pub async fn receipt(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let who = match member(&state, &session).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let id = PaymentId::parse(&raw).ok_or(AppError::NotFound)?;
    let r = payments::receipt(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut items = vec![];
    let mut viewed = vec![];
    for a in &r.allocations {
        let h = billing::statement_header(&state.db, &a.statement_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if !decide(
            &state,
            &who,
            Action::ViewReceipt,
            &h.tenant_id,
            &h.patient_id,
            false,
        )
        .allowed()
        {
            return Err(AppError::NotFound);
        }
        viewed.push((h.tenant_id.clone(), h.patient_id.clone()));
        items.push(ReceiptItemVm {
            patient_name: billing::first_name(
                &state.db,
                &state.crypto,
                &h.tenant_id,
                &h.patient_id,
            )
            .await?
            .into_inner(),
            practice_name: practice_name(&state, &h.tenant_id).await?,
            statement_date: iso(&h.statement_date),
            amount: a.amount.to_string(),
            new_balance: billing::balance(state.db.pool(), &h.id).await?.to_string(),
        });
    }
    if items.is_empty() {
        return Err(AppError::NotFound);
    }
    // Audited once every allocation passed the policy: a refused receipt logs no views.
    for (tenant, patient) in &viewed {
        audit_event(
            &state,
            &ctx,
            actor_id(&who.id),
            (Some(tenant), Some(patient)),
            "payment.receipt.view",
            Some(id.as_str()),
            Outcome::Success,
        )
        .await?;
    }
    let vm = AccountReceiptVm {
        amount: r.amount.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        brand: r.card_brand,
        last4: r.card_last4,
        reference: id.to_string(),
        items,
    };
    Ok(Html(pages::receipt(meta(&session).await?, vm)).into_response())
}
