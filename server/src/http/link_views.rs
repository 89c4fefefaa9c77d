//! What a pay-link holder may see of their statement and of a receipt, as view models under
//! the policy's permit: shared by the pages (`patient`) and their PDF downloads (`documents`).

use super::error::{AppError, Result};
use super::member::{iso, unseen};
use super::patient::{
    link_actor, link_principal, pay_form, permit, practice_of, refund_lines, refunds_by_payment,
    staff_or_unnamed, statement_lines, statement_view, totals,
};
use super::session::Sess;
use super::{AppState, RequestContext};
use crate::access::{self, Action, Resource};
use crate::billing;
use crate::ids::PaymentId;
use crate::links::PayLink;
use crate::payments;
use patriotpay_app::vm::*;

/// How a statement or receipt is shown: as the page or as its PDF (audited apart).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shown {
    Page,
    Pdf,
}

/// The itemised statement of the link as its holder may see it, under the policy's permit.
pub(super) async fn statement_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    link: &PayLink,
    shown_as: Shown,
) -> Result<StatementVm> {
    // Everything around the lines in one query, the lines (sealed) in a second: the page's
    // reads cost two round trips, not seven (issue 15).
    let frame = billing::statement_frame(&state.db, &link.statement_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let header = &frame.header;
    let sealed = billing::sealed_lines(&state.db, header).await?;
    // Whoever holds the link may be a parent: the policy decides line by line which details a
    // link holder may read (none of a line the practice marked confidential).
    let who = link_principal(ctx, link);
    let shown: Vec<bool> = sealed
        .confidential_flags()
        .into_iter()
        .map(|confidential| {
            access::decide(
                &who,
                Action::ViewItemisedStatement,
                &Resource {
                    tenant: &link.tenant_id,
                    patient: Some(&link.patient_id),
                    clinical_restricted: confidential,
                },
                ctx.now,
            )
            .allowed()
        })
        .collect();
    let (some_hidden, action, event) = statement_view(&shown);
    let event = match (shown_as, event) {
        (Shown::Page, e) => e,
        (Shown::Pdf, "statement.amounts.view") => "statement.amounts.pdf",
        (Shown::Pdf, _) => "statement.itemised.pdf",
    };
    let permit = permit(state, ctx, link, action, event, link.statement_id.as_str()).await?;
    let lines = sealed.open(&state.crypto, &permit).await?;
    let paid = billing::payments(&state.db, &link.statement_id, &permit).await?;
    let refunded = refunds_by_payment(state, &paid, &link.statement_id).await?;
    let balance = frame.balance;
    // The way back from a forgotten password: both answers were just given on this link.
    let offer_password_reset = frame.patient_has_account();
    Ok(StatementVm {
        offer_password_reset,
        practice_name: frame.practice_name.clone(),
        statement_date: iso(&header.statement_date),
        due_date: iso(&header.due_date),
        lines: statement_lines(&lines, &shown),
        totals: totals(&lines),
        some_hidden,
        payments: paid
            .iter()
            .zip(refunded)
            .map(|(p, refunds)| PaymentVm {
                date: crate::clock::display_date_unix(p.paid_at),
                amount: p.amount.to_string(),
                status: PaymentStatusVm::from_db(&p.status),
                refunds,
                brand: p.card_brand.clone(),
                last4: p.card_last4.clone(),
            })
            .collect(),
        balance: balance.to_string(),
        paid_in_full: !balance.is_positive(),
        pay: pay_form(session, balance, "statement").await?,
    })
}

/// The receipt of payment `raw` on the link's statement, under the policy's permit.
pub(super) async fn receipt_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    link: &PayLink,
    raw: &str,
    shown_as: Shown,
) -> Result<ReceiptVm> {
    let id = PaymentId::parse(raw).ok_or(AppError::NotFound)?;
    let r = payments::receipt(&state.db, &id).await?;
    let Some(r) = r.filter(|r| r.covers(&link.statement_id)) else {
        return Err(unseen(state, ctx, link_actor(link), "receipt.not_found", raw).await);
    };
    let event = match shown_as {
        Shown::Page => "payment.receipt.view",
        Shown::Pdf => "payment.receipt.pdf",
    };
    let _allowed = permit(state, ctx, link, Action::ViewReceipt, event, id.as_str()).await?;
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let practice = practice_of(state, link).await?;
    // Accounts are offered to adult patients without one signed in (see http/account.rs).
    let offer_account = session.data().await?.member.is_none()
        && ctx.viewing_as.is_none()
        && billing::is_adult(
            &state.db,
            &state.crypto,
            &link.tenant_id,
            &link.patient_id,
            ctx.now,
        )
        .await?;
    // The link's own statement's share only (a household payment covers others too), and the
    // card only when the payment was made through this very link.
    let share = r
        .allocations
        .iter()
        .find(|a| a.statement_id == link.statement_id)
        .map_or(r.amount, |a| a.amount);
    let paid_here = payments::find_checkout(&state.db, &r.checkout_id)
        .await?
        .is_some_and(|c| c.link_id.as_ref() == Some(&link.id));
    Ok(ReceiptVm {
        practice_name: practice.name,
        amount: share.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        card: paid_here.then_some(CardVm {
            brand: r.card_brand,
            last4: r.card_last4,
        }),
        reference: id.to_string(),
        new_balance: balance.to_string(),
        offer_account,
        status: PaymentStatusVm::from_db(&r.status),
        refunds: refund_lines(state, &id, Some(&link.statement_id)).await?,
        taken_by: r.taken_by.map(staff_or_unnamed),
    })
}
