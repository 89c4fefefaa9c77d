//! What an account may see of one statement and of a receipt, as view models under the
//! policy's permits: shared by the pages (`household`) and their PDF downloads (`documents`).

use super::error::{AppError, Result};
use super::household::open_statement_vm;
use super::link_views::Shown;
use super::member::*;
use super::session::{PayErrors, Sess};
use super::{AppState, RequestContext};
use crate::access::Action;
use crate::accounts::Account;
use crate::billing;
use crate::ids::{PaymentId, StatementId};
use crate::payments;
use patriotpay_app::vm::*;

/// Statement `raw` as this account may see it (descriptions hidden where the policy says),
/// under the policy's permit; a statement it may not see is "not found".
pub(super) async fn account_statement_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    who: &Account,
    raw: &str,
    shown_as: Shown,
) -> Result<AccountStatementVm> {
    let now = ctx.now;
    let id = StatementId::parse(raw).ok_or(AppError::NotFound)?;
    let not_found = || unseen(state, ctx, actor_id(&who.id), "statement.not_found", raw);
    let Some(frame) = billing::statement_frame(&state.db, &id).await? else {
        return Err(not_found().await);
    };
    let h = &frame.header;
    // A statement of someone else looks exactly like one that does not exist.
    if !decide(
        who,
        Action::ViewStatementAmounts,
        &h.tenant_id,
        &h.patient_id,
        false,
        now,
    )
    .allowed()
    {
        return Err(not_found().await);
    }
    let grown_up = adult(state, &h.tenant_id, &h.patient_id, now).await?;
    // Which descriptions this account may read: one policy decision per line.
    let sealed = billing::sealed_lines(&state.db, h).await?;
    let shown: Vec<bool> = sealed
        .confidential_flags()
        .into_iter()
        .map(|confidential| {
            decide(
                who,
                Action::ViewItemisedStatement,
                &h.tenant_id,
                &h.patient_id,
                confidential || grown_up,
                now,
            )
            .allowed()
        })
        .collect();
    let (some_hidden, action, event) = super::patient::statement_view(&shown);
    let event = match (shown_as, event) {
        (Shown::Page, e) => e,
        (Shown::Pdf, "statement.amounts.view") => "statement.amounts.pdf",
        (Shown::Pdf, _) => "statement.itemised.pdf",
    };
    let permit = member_permit(
        state,
        ctx,
        who,
        MemberAsk {
            action,
            tenant: &h.tenant_id,
            patient: &h.patient_id,
            event,
            resource: Some(h.id.as_str()),
        },
    )
    .await?;
    let own = decide(
        who,
        Action::ViewCardDetails,
        &h.tenant_id,
        &h.patient_id,
        false,
        now,
    )
    .allowed();
    let lines = sealed.open(&state.crypto, &permit).await?;
    let paid = billing::payments(&state.db, &h.id, &permit).await?;
    let refunded = super::patient::refunds_by_payment(state, &paid, &h.id).await?;
    let (balance, practice) = (frame.balance, frame.practice_name.clone());
    let name = billing::first_name(&state.db, &state.crypto, &permit).await?;
    // A download leaves the pay form's carried errors for the page.
    let errors = match shown_as {
        Shown::Page => super::household::take_pay_errors(session).await?,
        Shown::Pdf => PayErrors::default(),
    };
    Ok(AccountStatementVm {
        csrf: session.csrf_token().await?,
        practice_name: practice.clone(),
        patient_name: name.expose().clone(),
        statement: open_statement_vm(
            h,
            name.expose(),
            &practice,
            balance,
            errors.items.get(h.id.as_str()),
        ),
        lines: super::patient::statement_lines(&lines, &shown),
        totals: super::patient::totals(&lines),
        payments: paid
            .iter()
            .zip(refunded)
            .map(|(p, refunds)| {
                // The card is shown to the patient and to whoever paid with it, not to a
                // guarantor looking at the patient's own payments.
                let card = own || p.paid_by.as_ref() == Some(&who.id);
                PaymentVm {
                    date: crate::clock::display_date_unix(p.paid_at),
                    amount: p.amount.to_string(),
                    status: PaymentStatusVm::from_db(&p.status),
                    refunds,
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
    })
}

/// The receipt of payment `raw` as this account may see it: every statement it paid must be
/// one the account may see, or the receipt is "not found".
pub(super) async fn account_receipt_vm(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    raw: &str,
    shown_as: Shown,
) -> Result<AccountReceiptVm> {
    let id = PaymentId::parse(raw).ok_or(AppError::NotFound)?;
    let not_found = || unseen(state, ctx, actor_id(&who.id), "receipt.not_found", raw);
    let Some(r) = payments::receipt(&state.db, &id).await? else {
        return Err(not_found().await);
    };
    let mut headers = vec![];
    for a in &r.allocations {
        let h = billing::statement_header(&state.db, &a.statement_id)
            .await?
            .ok_or(AppError::NotFound)?;
        // Every allocation is checked before any view is recorded: a refused receipt logs none.
        if !decide(
            who,
            Action::ViewReceipt,
            &h.tenant_id,
            &h.patient_id,
            false,
            ctx.now,
        )
        .allowed()
        {
            return Err(not_found().await);
        }
        headers.push((a, h));
    }
    if headers.is_empty() {
        return Err(not_found().await);
    }
    // The card is shown to whoever paid with it, or to the patient every share was for; never
    // to a guarantor looking at the patient's own payment.
    let paid_by_viewer = payments::find_checkout(&state.db, &r.checkout_id)
        .await?
        .is_some_and(|c| c.user_id.as_ref() == Some(&who.id));
    let own_card = paid_by_viewer
        || headers.iter().all(|(_, h)| {
            decide(
                who,
                Action::ViewCardDetails,
                &h.tenant_id,
                &h.patient_id,
                false,
                ctx.now,
            )
            .allowed()
        });
    let event = match shown_as {
        Shown::Page => "payment.receipt.view",
        Shown::Pdf => "payment.receipt.pdf",
    };
    let mut items = vec![];
    for (a, h) in headers {
        let permit = member_permit(
            state,
            ctx,
            who,
            MemberAsk {
                action: Action::ViewReceipt,
                tenant: &h.tenant_id,
                patient: &h.patient_id,
                event,
                resource: Some(id.as_str()),
            },
        )
        .await?;
        items.push(ReceiptItemVm {
            patient_name: billing::first_name(&state.db, &state.crypto, &permit)
                .await?
                .into_inner(),
            practice_name: practice_name(state, &h.tenant_id).await?,
            statement_date: iso(&h.statement_date),
            amount: a.amount.to_string(),
            new_balance: billing::balance(state.db.pool(), &h.id).await?.to_string(),
        });
    }
    Ok(AccountReceiptVm {
        amount: r.amount.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        card: own_card.then_some(CardVm {
            brand: r.card_brand,
            last4: r.card_last4,
        }),
        reference: id.to_string(),
        items,
        status: PaymentStatusVm::from_db(&r.status),
        refunds: super::patient::refund_lines(state, &id, None).await?,
        taken_by: r.taken_by.map(super::patient::staff_or_unnamed),
    })
}
