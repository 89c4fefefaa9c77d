//! A patient's payments for practice admins (status, method, refunds made, disputes) and the
//! refund form: every view and every refund is a permit for `IssueRefund`, and so audited.

use super::guarantors::practice_of;
use super::{actor_id, ask, meta};
use crate::access::{Action, Permit, Resource, Role};
use crate::accounts::Account;
use crate::billing;
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, RoleSet, StaffWith};
use crate::http::member::unseen;
use crate::http::session::Sess;
use crate::http::{see_other_query, tr, AppState, RequestContext};
use crate::ids::{PatientId, PaymentId, RefundId};
use crate::money::Money;
use crate::payments::history::{self, PaymentHistory};
use crate::payments::plans;
use crate::payments::refunds::{self, IssueRefund, RefundError};
use crate::payments::RefundReason;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::RefundForm;
use patriotpay_app::staff as pages;
use patriotpay_app::vm::{RefundFormVm, StaffPaymentVm, StaffPaymentsVm, StaffRefundVm};
use patriotpay_app::Url;

/// Staff who may refund: only practice admins hold `IssueRefund`. Others are refused at the
/// door (403), as for guarantor revocation.
pub struct Refunders;

impl RoleSet for Refunders {
    const ROLES: &'static [Role] = &[Role::PracticeAdmin];
}

/// `?refunded=<refund id>` after a refund went through (post-redirect-get).
#[derive(Default, serde::Deserialize)]
pub struct RefundedQuery {
    #[serde(default)]
    refunded: String,
}

/// The permit to see and refund one patient's payments; another practice's patient, or no
/// patient, is not found (and the attempt audited).
async fn permit_for(
    state: &AppState,
    ctx: &RequestContext,
    account: &Account,
    raw: &str,
    event: &'static str,
) -> Result<(PatientId, Permit)> {
    let patient = PatientId::parse(raw).ok_or(AppError::NotFound)?;
    let Some(tenant) = practice_of(state, &patient).await? else {
        let actor = actor_id(&account.id);
        return Err(unseen(state, ctx, actor, "patient.not_found", patient.as_str()).await);
    };
    let on = Resource {
        tenant: &tenant,
        patient: Some(&patient),
        clinical_restricted: false,
    };
    let permit = ask(
        state,
        ctx,
        account,
        Action::IssueRefund,
        on,
        event,
        Some(patient.as_str()),
    )
    .await?;
    Ok((patient, permit))
}

fn reasons() -> Vec<(String, String)> {
    RefundReason::ALL
        .into_iter()
        .map(|r| {
            (
                r.as_str().to_owned(),
                tr().t(&format!("staff-refund-reason-{}", r.as_str())),
            )
        })
        .collect()
}

fn payment_vm(p: &PaymentHistory) -> StaffPaymentVm {
    let method = if p.method == "us_bank_account" {
        tr().t("staff-payment-method-bank")
    } else {
        tr().t("staff-payment-method-card")
    };
    let status = match p.status.as_str() {
        "processing" | "failed" => p.status.clone(),
        _ => "succeeded".to_owned(),
    };
    StaffPaymentVm {
        id: p.id.to_string(),
        date: crate::clock::display_date_unix(p.paid_at),
        amount: p.amount.to_string(),
        method,
        brand: p.card_brand.clone(),
        last4: p.card_last4.clone(),
        refundable: status == "succeeded" && !p.disputed && p.left.is_positive(),
        status,
        refunds: p
            .refunds
            .iter()
            .map(|r| StaffRefundVm {
                date: crate::clock::display_date_unix(r.created_at),
                amount: r.amount.to_string(),
                status: tr().t(&format!("staff-refund-status-{}", r.status)),
                reason: tr().t(&format!("staff-refund-reason-{}", r.reason)),
            })
            .collect(),
        disputed: p.disputed,
        left: p.left.to_string(),
        form: RefundFormVm {
            amount: p.left.plain(),
            reason: RefundReason::RequestedByCustomer.as_str().to_owned(),
            error: None,
        },
    }
}

async fn page_vm(
    state: &AppState,
    session: &Sess,
    patient: &PatientId,
    permit: &Permit,
    list: &[PaymentHistory],
) -> Result<StaffPaymentsVm> {
    let name = billing::full_name(&state.db, &state.crypto, permit).await?;
    let practice = billing::tenant(&state.db, permit.tenant())
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    Ok(StaffPaymentsVm {
        csrf: session.csrf_token().await?,
        patient_id: patient.to_string(),
        patient_name: name.into_inner(),
        practice,
        payments: list.iter().map(payment_vm).collect(),
        notice: None,
        reasons: reasons(),
        plans: plans::of_patient(&state.db, permit.tenant(), patient)
            .await?
            .iter()
            .map(plan_line)
            .collect(),
    })
}

/// One plan as staff read it: amounts, schedule, card, and where it stands.
fn plan_line(p: &plans::Plan) -> String {
    let status = match p.status {
        plans::PlanStatus::Suspended => tr().t("staff-plan-suspended"),
        s => tr().t(&format!("staff-plan-{}", s.as_str())),
    };
    tr().ta(
        "staff-plan-line",
        &[
            ("total", &p.total.to_string()),
            ("count", &p.instalments.len().to_string()),
            ("paid", &p.paid().to_string()),
            ("since", &crate::clock::display_date_unix(p.created_at)),
            ("status", &status),
        ],
    )
}

fn render(status: StatusCode, vm: StaffPaymentsVm) -> Response {
    (status, Html(pages::payments(meta(), vm))).into_response()
}

/// A patient's payments, each with its refunds and (where it can be refunded) the form.
pub async fn payments_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<Refunders>,
    Path(raw): Path<String>,
    Query(q): Query<RefundedQuery>,
) -> Result<Response> {
    let (patient, permit) =
        permit_for(&state, &ctx, &account, &raw, "patient.payments.view").await?;
    let list = history::payments_of_patient(&state.db, &permit).await?;
    let mut vm = page_vm(&state, &session, &patient, &permit, &list).await?;
    // The notice names a refund of this patient's payments only.
    if let Some(id) = RefundId::parse(&q.refunded) {
        let done = list.iter().flat_map(|p| &p.refunds).find(|r| r.id == id);
        if let Some(r) = done {
            let key = if r.status == "succeeded" {
                "staff-refund-issued"
            } else {
                "staff-refund-pending"
            };
            vm.notice = Some(tr().ta(key, &[("amount", &r.amount.to_string())]));
        }
    }
    Ok(render(StatusCode::OK, vm))
}

/// What staff are told for a refusal (the form is shown again with what they typed).
fn refusal_message(e: &RefundError) -> String {
    match e {
        RefundError::NotPositive => tr().t("staff-refund-error-not-positive"),
        RefundError::MoreThanLeft { left } => tr().ta(
            "staff-refund-error-more-than-left",
            &[("left", &left.to_string())],
        ),
        RefundError::Processing => tr().t("staff-refund-error-processing"),
        RefundError::PaymentFailed => tr().t("staff-refund-error-failed"),
        RefundError::Disputed => tr().t("staff-refund-error-disputed"),
        RefundError::Refused(why) => tr().ta("staff-refund-error-refused", &[("why", why)]),
        RefundError::Unavailable(_) => tr().t("staff-refund-error-unavailable"),
        // Not shown: answered as not found / server error before this is asked.
        RefundError::NotFound | RefundError::Db(_) => String::new(),
    }
}

/// Refunds part or all of one payment of the patient. Success redirects to the payments page
/// (a reload cannot refund twice); a refusal shows the page again with the message and the
/// amount and reason as typed.
pub async fn refund(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, ..): StaffWith<Refunders>,
    CsrfForm(form): CsrfForm<RefundForm>,
) -> Result<Response> {
    let (patient, permit) =
        permit_for(&state, &ctx, &account, &form.patient, "payment.refund").await?;
    let list = history::payments_of_patient(&state.db, &permit).await?;
    // Only a payment to this patient's statements; anything else is not found.
    let payment = PaymentId::parse(&form.payment)
        .filter(|id| list.iter().any(|p| &p.id == id))
        .ok_or(AppError::NotFound)?;
    let reason = RefundReason::parse(&form.reason);
    let amount = Money::parse_dollars(&form.amount);
    let refused = match (amount, reason) {
        (Err(_), _) => Some(tr().t("staff-refund-error-amount")),
        (_, None) => Some(tr().t("staff-refund-error-reason")),
        (Ok(amount), Some(reason)) => {
            let actor = ctx.actor(actor_id(&account.id));
            let req = IssueRefund {
                permit: &permit,
                payment: payment.clone(),
                amount,
                reason,
                now: ctx.now,
            };
            match refunds::issue(&state.db, state.processor.as_ref(), req, &actor).await {
                Ok(id) => {
                    return Ok(see_other_query(
                        Url::StaffPatientPayments(patient.as_str()),
                        "refunded",
                        id.as_str(),
                    ));
                }
                Err(RefundError::NotFound) => return Err(AppError::NotFound),
                Err(RefundError::Db(e)) => return Err(e.into()),
                Err(e) => Some(refusal_message(&e)),
            }
        }
    };
    // Read again: a refused or failed refund may have changed what the page shows.
    let list = history::payments_of_patient(&state.db, &permit).await?;
    let mut vm = page_vm(&state, &session, &patient, &permit, &list).await?;
    if let Some(p) = vm.payments.iter_mut().find(|p| p.id == payment.as_str()) {
        p.form = RefundFormVm {
            amount: form.amount.clone(),
            reason: form.reason.clone(),
            error: refused,
        };
        // Keep the form (and its message) even when the payment can no longer be refunded.
        p.refundable = true;
    }
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, vm))
}
