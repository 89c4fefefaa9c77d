//! The patient's pages once the date of birth is given (the check itself is in `verify`): summary
//! → itemised statement → pay → receipt. Every form posts and redirects; every view of PHI goes
//! through a permit, which writes its audit event.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, LinkVisitor, VerifiedVisitor};
use super::link_views::{receipt_vm, statement_vm, Shown};
use super::member::{iso, unseen};
use super::session::{Flash, Sess, Stage};
use super::{see_other, to_processor_checkout, tr, AppState, RequestContext, Routes};
use crate::access::{self, Action, Permit, Principal, Resource};
use crate::billing;
use crate::ids::{CheckoutId, PaymentId, StatementId};
use crate::links::PayLink;
use crate::money::{AmountError, Money};
use crate::payments::{self, DeclineReason};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{PayForm, ReturnQuery};
use patriotpay_app::pages;
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm::*;

/// The pay-link pages.
pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::Home, home)
        .page(Url::Accessibility, accessibility)
        .phi_page(Url::Summary, summary)
        .phi_page(Url::Statement, statement)
        .form(Url::Pay, pay)
        .phi_page(Url::PayReturn(ANY), pay_return)
        .phi_page(Url::PayCancelled(ANY), pay_cancelled)
        .phi_page(Url::Receipt(ANY), receipt)
        .form(Url::SignOut, super::signout::signout)
        .page(Url::SignedOut, super::signout::signed_out)
        .page(Url::Expired, super::signout::expired)
}

pub(super) async fn meta(session: &Sess, practice: Option<String>) -> Result<PageMeta> {
    Ok(PageMeta {
        practice_name: practice,
        signout_csrf: Some(session.csrf_token().await?),
        ..super::page_meta()
    })
}

/// The actor id of whoever holds this link.
pub(super) fn link_actor(link: &PayLink) -> String {
    format!("link:{}", link.id)
}

/// Whoever holds this link, as the policy sees them; under view-as, read-only (but for a payment
/// where the practice allows staff to act on the patient's behalf).
pub(super) fn link_principal(ctx: &RequestContext, link: &PayLink) -> Principal {
    let mut who = Principal::patient_of(link_actor(link), &link.tenant_id, &link.patient_id);
    who.impersonating = ctx.viewing_as.is_some();
    who.acting_on_behalf = ctx.view_as_may_pay;
    who
}

/// Asks the policy on behalf of the patient holding this link; the permit writes the audit
/// event (allowed or denied). A refusal reads as "not found".
pub(super) async fn permit(
    state: &AppState,
    ctx: &RequestContext,
    link: &PayLink,
    action: Action,
    event: &'static str,
    resource: &str,
) -> Result<Permit> {
    let who = link_principal(ctx, link);
    let p = access::permit_view(
        &state.audit,
        access::Ask {
            who: &who,
            actor: &ctx.actor(link_actor(link)),
            action,
            on: Resource {
                tenant: &link.tenant_id,
                patient: Some(&link.patient_id),
                clinical_restricted: false,
            },
            event,
            resource: Some(resource),
            now: ctx.now,
        },
    )
    .await?;
    Ok(p)
}

pub async fn home() -> Html<String> {
    Html(pages::home(super::page_meta()))
}

pub async fn accessibility() -> Html<String> {
    Html(pages::accessibility(super::page_meta()))
}

pub(super) async fn practice_of(state: &AppState, link: &PayLink) -> Result<billing::Tenant> {
    billing::tenant(&state.db, &link.tenant_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("link's practice is missing")))
}

/// The payment form's view model, with any error carried over from a refused POST.
pub(super) async fn pay_form(
    session: &Sess,
    balance: Money,
    from: &'static str,
) -> Result<PayFormVm> {
    let mut vm = PayFormVm {
        csrf: session.csrf_token().await?,
        balance: balance.to_string(),
        amount: balance.plain(),
        error: None,
        from,
    };
    // Only the pay form's own message: any other (a notice for the page) is left for its page.
    let mine = |f: &Flash| f.field.as_deref() == Some(PayForm::AMOUNT);
    if let Some(f) = session.take_flash_if(mine).await? {
        let message = match &f.arg {
            Some(arg) => tr().ta(&f.key, &[("balance", arg)]),
            None => tr().t(&f.key),
        };
        vm.amount = f.value.unwrap_or_default();
        vm.error = Some(FieldError {
            field: PayForm::AMOUNT,
            message,
        });
    }
    Ok(vm)
}

pub async fn summary(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, stage }: LinkVisitor,
) -> Result<Response> {
    let (event, statement) = ("statement.summary.view", link.statement_id.as_str());
    let permit = permit(&state, &ctx, &link, Action::ViewBalance, event, statement).await?;
    let frame = billing::statement_frame(&state.db, &link.statement_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let (header, balance) = (&frame.header, frame.balance);
    let vm = SummaryVm {
        texts: super::text_choice::for_summary(&state, &ctx, &session, &permit).await?,
        practice_name: frame.practice_name.clone(),
        statement_date: iso(&header.statement_date),
        due_date: iso(&header.due_date),
        balance: balance.to_string(),
        paid_in_full: !balance.is_positive(),
        itemised_unlocked: stage == Stage::Full,
        pay: pay_form(&session, balance, "summary").await?,
        // What is left is a notice for this page (e.g. "Consent noted." under view-as).
        notice: session.take_flash().await?.map(|f| tr().t(&f.key)),
    };
    Ok(Html(pages::summary(
        meta(&session, Some(frame.practice_name)).await?,
        vm,
    ))
    .into_response())
}

pub async fn statement(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    VerifiedVisitor(link): VerifiedVisitor,
) -> Result<Response> {
    let vm = statement_vm(&state, &ctx, &session, &link, Shown::Page).await?;
    let practice = vm.practice_name.clone();
    Ok(Html(pages::statement(meta(&session, Some(practice)).await?, vm)).into_response())
}

/// What a view of a statement with these per-line answers is, for the permit and the page:
/// whether any line is hidden, and the action and audit event (amounts only, or itemised).
pub(super) fn statement_view(shown: &[bool]) -> (bool, Action, &'static str) {
    if shown.iter().any(|s| !s) {
        (true, Action::ViewStatementAmounts, "statement.amounts.view")
    } else {
        (
            false,
            Action::ViewItemisedStatement,
            "statement.itemised.view",
        )
    }
}

/// Statement lines as the viewer may see them: `shown[i]` is the policy's answer for line `i`
/// (a missing answer hides). A hidden line keeps its amounts and loses its date of service with
/// its description.
pub(super) fn statement_lines(lines: &[billing::Line], shown: &[bool]) -> Vec<StatementLineVm> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| StatementLineVm {
            detail: shown
                .get(i)
                .copied()
                .unwrap_or(false)
                .then(|| LineDetailVm {
                    service_date: iso(l.service_date.expose()),
                    description: l.description.expose().clone(),
                }),
            amounts: AmountsVm {
                charge: l.charge.to_string(),
                insurance_paid: l.insurance_paid.to_string(),
                adjustment: l.adjustment.to_string(),
                responsibility: l.patient_responsibility.to_string(),
            },
        })
        .collect()
}

/// The totals row of a statement's lines.
pub(super) fn totals(lines: &[billing::Line]) -> AmountsVm {
    let sum = |f: fn(&billing::Line) -> Money| {
        Money::from_cents(lines.iter().map(|l| f(l).cents()).sum()).to_string()
    };
    AmountsVm {
        charge: sum(|l| l.charge),
        insurance_paid: sum(|l| l.insurance_paid),
        adjustment: sum(|l| l.adjustment),
        responsibility: sum(|l| l.patient_responsibility),
    }
}

/// The catalog key (and argument) for an amount the payment form refuses.
pub(super) fn amount_error(e: AmountError, balance: Money) -> (&'static str, Option<String>) {
    match e {
        AmountError::Empty => ("pay-err-empty", None),
        AmountError::Format => ("pay-err-format", None),
        AmountError::Negative => ("pay-err-negative", None),
        AmountError::Zero => ("pay-err-zero", None),
        AmountError::OverBalance => ("pay-err-over", Some(balance.to_string())),
        AmountError::NothingDue => ("pay-err-nothing-due", None),
    }
}

pub async fn pay(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    CsrfForm(form): CsrfForm<PayForm>,
) -> Result<Response> {
    let _allowed = permit(
        &state,
        &ctx,
        &link,
        Action::MakePayment,
        "payment.checkout.ask",
        link.statement_id.as_str(),
    )
    .await?;
    let back = if form.from == "statement" {
        Url::Statement
    } else {
        Url::Summary
    };
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let amount = match Money::parse_payment(&form.amount, balance) {
        Ok(a) => a,
        Err(e) => {
            let (key, arg) = amount_error(e, balance);
            // Only the amount typed is kept (trimmed to a sane length): never PHI.
            let value: String = form.amount.chars().take(32).collect();
            let flash = Flash {
                key: key.into(),
                field: Some(PayForm::AMOUNT.into()),
                value: Some(value),
                arg,
            };
            session.set_flash(flash).await?;
            return Ok(see_other(back));
        }
    };
    let actor = ctx.actor(link_actor(&link));
    let plan = payments::CheckoutPlan {
        tenant: link.tenant_id.clone(),
        items: vec![(link.statement_id.clone(), amount)],
        patients: vec![link.patient_id.clone()],
        link: Some(link.id.clone()),
        user: None,
        // The processor comes back to `Url::PayReturn`/`Url::PayCancelled`, under this prefix.
        return_prefix: Url::Pay.template(),
        instalment: None,
    };
    let key = match start_checkout(&state, &plan, &actor).await? {
        Checkout::Started(url) => return Ok(to_processor_checkout(&url)),
        Checkout::Problem(key) => key,
    };
    let flash = Flash {
        key: key.into(),
        field: Some(PayForm::AMOUNT.into()),
        value: Some(amount.plain()),
        arg: None,
    };
    session.set_flash(flash).await?;
    Ok(see_other(back))
}

/// What starting a checkout came to, for the payer.
pub(super) enum Checkout {
    /// Send the payer to the processor's page at this URL.
    Started(String),
    /// Back to the form with this message (the processor failed, or a payment is on its way).
    Problem(&'static str),
}

/// Starts a checkout at the processor for a pay form (link or account).
pub(super) async fn start_checkout(
    state: &AppState,
    plan: &payments::CheckoutPlan,
    actor: &crate::audit::Actor,
) -> Result<Checkout> {
    match payments::start_checkout(
        &state.db,
        state.processor.as_ref(),
        &state.alerts,
        plan,
        &state.public_url,
        actor,
    )
    .await
    {
        Ok(url) => Ok(Checkout::Started(url)),
        Err(payments::PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "checkout could not be created");
            Ok(Checkout::Problem("pay-err-processor"))
        }
        Err(payments::PaymentError::Pending) => Ok(Checkout::Problem("pay-err-pending")),
        Err(e) => Err(AppError::Internal(e.into())),
    }
}

/// Our checkout, if it belongs to the visitor's statement; 404 otherwise (another patient's
/// checkout id looks exactly like one that does not exist).
async fn own_checkout(
    state: &AppState,
    ctx: &RequestContext,
    link: &PayLink,
    raw: &str,
) -> Result<payments::CheckoutRow> {
    let id = CheckoutId::parse(raw).ok_or(AppError::NotFound)?;
    let row = payments::find_checkout(&state.db, &id).await?;
    let Some(row) = row.filter(|row| {
        row.link_id.as_ref() == Some(&link.id)
            && row.statement_id.as_ref() == Some(&link.statement_id)
            && row.tenant_id == link.tenant_id
    }) else {
        return Err(unseen(state, ctx, link_actor(link), "checkout.not_found", raw).await);
    };
    Ok(row)
}

/// Where the processor sends the patient after paying. The payment itself is recorded by the
/// webhook; this page only waits for it.
pub async fn pay_return(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let checkout = own_checkout(&state, &ctx, &link, &raw).await?;
    let _allowed = permit(
        &state,
        &ctx,
        &link,
        Action::MakePayment,
        "payment.return.view",
        checkout.id.as_str(),
    )
    .await?;
    let practice = practice_of(&state, &link).await?;
    let meta = meta(&session, Some(practice.name)).await?;
    back_from_processor(&state, ctx.now, &checkout, &q, Payer::Link, meta).await
}

/// Whose pages a return from the processor leads to: the pay link's or the account's.
#[derive(Clone, Copy)]
pub(super) enum Payer {
    Link,
    Member,
}

impl Payer {
    fn receipt(self, payment: &str) -> Url<'_> {
        match self {
            Payer::Link => Url::Receipt(payment),
            Payer::Member => Url::AccountReceipt(payment),
        }
    }

    fn cancelled(self, checkout: &str) -> Url<'_> {
        match self {
            Payer::Link => Url::PayCancelled(checkout),
            Payer::Member => Url::AccountPayCancelled(checkout),
        }
    }

    fn back(self, checkout: &str) -> Url<'_> {
        match self {
            Payer::Link => Url::PayReturn(checkout),
            Payer::Member => Url::AccountPayReturn(checkout),
        }
    }

    /// Where the payer's balance shows.
    fn home(self) -> Url<'static> {
        match self {
            Payer::Link => Url::Summary,
            Payer::Member => Url::Account,
        }
    }
}

/// How many times the payer may ask the confirming page to check again before it says to come
/// back later instead of inviting more checks.
pub const MAX_CONFIRM_CHECKS: u32 = 5;

/// How often the return polls for the booking while it waits: the webhook may be booked by
/// another instance, so a wake-up within this process would not be enough.
const CONFIRM_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The return from the processor's page, for a checkout the visitor owns: the receipt once the
/// webhook recorded the payment (waiting up to `AppState::confirm_wait` for it), the cancelled
/// page if nothing was paid (or the processor no longer knows the checkout, or its payment did
/// not succeed), else a page that says the payment is being recorded, with a "check again" link.
pub(super) async fn back_from_processor(
    state: &AppState,
    now: i64,
    checkout: &payments::CheckoutRow,
    q: &ReturnQuery,
    payer: Payer,
    meta: PageMeta,
) -> Result<Response> {
    let session_id = q.session_id.as_str();
    if checkout.processor_session_id.as_deref() != Some(session_id) {
        return Err(AppError::NotFound);
    }
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(payer.receipt(payment.as_str())));
    }
    // The processor's truth, read again each time: a checkout it forgot, or one it calls
    // complete with a payment that did not succeed, is closed and never waited for.
    let truth = payments::reread_checkout(
        &state.db,
        state.processor.as_ref(),
        &state.alerts,
        &checkout.id,
        session_id,
        now,
    )
    .await
    .map_err(|e| match e {
        payments::PaymentError::Processor(e) => AppError::Unavailable(e.to_string()),
        payments::PaymentError::Db(e) => e.into(),
        other => AppError::Internal(other.into()),
    })?;
    if truth != payments::Truth::Pending {
        return Ok(see_other(payer.cancelled(checkout.id.as_str())));
    }
    // Paid there, refused here (the webhook closed it for reconciliation): waiting is useless.
    let refused = matches!(
        checkout.state,
        payments::CheckoutState::Failed | payments::CheckoutState::Expired
    );
    if !refused {
        if let Some(payment) = wait_for_booking(state, &checkout.id).await? {
            return Ok(see_other(payer.receipt(payment.as_str())));
        }
    }
    // Only the page's own link raises the count (anything unreadable is 0).
    let checks = q.checks.parse::<u32>().unwrap_or(0).min(MAX_CONFIRM_CHECKS);
    let next = (checks + 1).min(MAX_CONFIRM_CHECKS).to_string();
    let vm = ConfirmingVm {
        check_path: payer.back(checkout.id.as_str()).with_queries(&[
            (ReturnQuery::SESSION_ID, session_id),
            (ReturnQuery::CHECKS, &next),
        ]),
        still_waiting: !refused && checks < MAX_CONFIRM_CHECKS,
        back_path: payer.home().path(),
    };
    Ok(Html(pages::confirming(meta, vm)).into_response())
}

/// The payment booked for `checkout`, polled until `confirm_wait` runs out: the processor
/// sends its event as it redirects the payer, so the receipt is usually a moment away.
async fn wait_for_booking(
    state: &AppState,
    checkout: &crate::ids::CheckoutId,
) -> Result<Option<crate::ids::PaymentId>> {
    let deadline = tokio::time::Instant::now() + state.confirm_wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        tokio::time::sleep(left.min(CONFIRM_POLL)).await;
        if let Some(payment) = payments::payment_for_checkout(&state.db, checkout).await? {
            return Ok(Some(payment));
        }
    }
}

/// Why a checkout ended without a payment, as the declined page says it.
pub(super) async fn decline_kind(
    state: &AppState,
    checkout: &payments::CheckoutRow,
) -> Result<DeclineKind> {
    Ok(
        match payments::decline_reason(state.processor.as_ref(), checkout)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?
        {
            Some(DeclineReason::InsufficientFunds) => DeclineKind::InsufficientFunds,
            Some(DeclineReason::Generic) => DeclineKind::Declined,
            None => DeclineKind::Cancelled,
        },
    )
}

pub async fn pay_cancelled(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    Path(raw): Path<String>,
) -> Result<Response> {
    let checkout = own_checkout(&state, &ctx, &link, &raw).await?;
    let _allowed = permit(
        &state,
        &ctx,
        &link,
        Action::MakePayment,
        "payment.cancelled.view",
        checkout.id.as_str(),
    )
    .await?;
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(Url::Receipt(payment.as_str())));
    }
    let kind = decline_kind(&state, &checkout).await?;
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let practice = practice_of(&state, &link).await?;
    let vm = DeclinedVm {
        kind,
        pay: pay_form(&session, balance, "summary").await?,
        paid_in_full: !balance.is_positive(),
    };
    Ok(Html(pages::declined(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

/// The refunds booked on a payment (on one statement of it, or all), as receipts list them.
pub(super) async fn refund_lines(
    state: &AppState,
    payment: &PaymentId,
    statement: Option<&StatementId>,
) -> Result<Vec<RefundLineVm>> {
    Ok(
        payments::history::booked_refunds(&state.db, payment, statement)
            .await?
            .into_iter()
            .map(|r| RefundLineVm {
                date: crate::clock::display_date_unix(r.at),
                amount: r.amount.to_string(),
            })
            .collect(),
    )
}

/// The refunds booked on one statement from each of its payments, in the payments' order.
pub(super) async fn refunds_by_payment(
    state: &AppState,
    paid: &[billing::PaymentRecord],
    statement: &StatementId,
) -> Result<Vec<Vec<RefundLineVm>>> {
    let mut out = Vec::with_capacity(paid.len());
    for p in paid {
        out.push(refund_lines(state, &PaymentId::from_db(p.id.clone()), Some(statement)).await?);
    }
    Ok(out)
}

/// A staff member's display name as a patient reads it ("A staff member" when they have none).
pub(super) fn staff_or_unnamed(name: String) -> String {
    if name.is_empty() {
        tr().t("staff-unnamed")
    } else {
        name
    }
}

pub async fn receipt(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    Path(raw): Path<String>,
) -> Result<Response> {
    let vm = receipt_vm(&state, &ctx, &session, &link, &raw, Shown::Page).await?;
    let practice = vm.practice_name.clone();
    Ok(Html(pages::receipt(meta(&session, Some(practice)).await?, vm)).into_response())
}
