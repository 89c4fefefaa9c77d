//! The account page: each person's open statements (own and dependants'), a statement with
//! clinical detail hidden where the policy says, and the receipt of how a payment split.

use super::error::{AppError, Result};
use super::extract::Member;
use super::member::*;
use super::session::{PayErrors, PayItemError, Sess};
use super::{tr, AppState, RequestContext, Routes};
use crate::access::{Action, Role};
use crate::accounts::Account;
use crate::billing;
use crate::guarantors;
use crate::ids::{PaymentId, StatementId};
use crate::money::Money;
use crate::payments;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account as pages;
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm::*;

/// The account page, a statement, a receipt; paying is in `household_pay`.
pub fn router(state: &AppState) -> Routes {
    // `/account` is a plain page to the guard: an account with no one on it asks the policy
    // nothing. Each person shown on it is still read under a permit.
    Routes::new(state)
        .page(Url::Account, home)
        .phi_page(Url::AccountStatement(ANY), statement)
        .phi_page(Url::AccountReceipt(ANY), receipt)
}

pub(super) fn open_statement_vm(
    h: &billing::StatementHeader,
    name: &str,
    practice: &str,
    balance: Money,
    carried: Option<&PayItemError>,
) -> OpenStatementVm {
    let error = carried.and_then(|c| c.key.as_ref()).map(|k| {
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
            .map(|c| c.typed.clone())
            .unwrap_or_else(|| balance.plain()),
        checked: carried.is_some_and(|c| c.checked),
        paid_in_full: !balance.is_positive(),
        error,
        split: None,
    }
}

/// Where a statement's charges went (amounts are not PHI; the lines' words stay sealed).
async fn split_vm(state: &AppState, id: &StatementId) -> Result<patriotpay_app::pictures::SplitVm> {
    let s = billing::charge_split(&state.db, id).await?;
    Ok(patriotpay_app::pictures::SplitVm {
        insurance_cents: s.insurance_paid.cents(),
        adjustment_cents: s.adjustment.cents(),
        owed_cents: s.patient_responsibility.cents(),
        charge: s.charge.to_string(),
        insurance: s.insurance_paid.to_string(),
        adjustment: s.adjustment.to_string(),
        owed: s.patient_responsibility.to_string(),
    })
}

pub async fn home(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
) -> Result<Response> {
    let vm = home_vm(&state, &ctx, &session, &who).await?;
    Ok(Html(pages::home(meta(&session).await?, vm)).into_response())
}

/// The pay form's errors carried over from a refused payment, taken once.
async fn take_pay_errors(session: &Sess) -> Result<PayErrors> {
    if session.data().await?.pay_errors.is_none() {
        return Ok(PayErrors::default());
    }
    Ok(session
        .update(|d| d.pay_errors.take())
        .await?
        .unwrap_or_default())
}

/// Everything on the account page: each person's open statements (as far as the policy lets
/// this account see them), and the guarantors and invitations on the holder's own records.
pub(super) async fn home_vm(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    who: &Account,
) -> Result<AccountHomeVm> {
    let now = ctx.now;
    let errors = take_pay_errors(session).await?;
    let mut vm = AccountHomeVm {
        csrf: session.csrf_token().await?,
        email: who.email(&state.crypto).await?.into_inner(),
        pay_error: errors.general.as_deref().map(|k| tr().t(k)),
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        vm.notice = Some(tr().t(&f.key));
    }
    let mut total = Money::from_cents(0);
    for (role, tenant, patient) in people(who) {
        // Someone the account no longer may see is left out, not refused.
        if !decide(who, Action::ViewBalance, &tenant, &patient, false, now).allowed() {
            continue;
        }
        let permit = member_permit(
            state,
            ctx,
            who,
            MemberAsk {
                action: Action::ViewBalance,
                tenant: &tenant,
                patient: &patient,
                event: "household.view",
                resource: None,
            },
        )
        .await?;
        let name = billing::first_name(&state.db, &state.crypto, &permit).await?;
        let practice = practice_name(state, &tenant).await?;
        let mut statements = vec![];
        for (h, balance) in billing::statements_of(&state.db, &tenant, &patient).await? {
            if !balance.is_positive() {
                continue;
            }
            total = total.checked_add(balance).unwrap_or(total);
            let mut open = open_statement_vm(
                &h,
                name.expose(),
                &practice,
                balance,
                errors.items.get(h.id.as_str()),
            );
            open.split = Some(split_vm(state, &h.id).await?);
            statements.push(open);
        }
        // Guarantors are managed by adult patients (and the practice); a minor's are the
        // practice's to change.
        let grown = role == Role::Patient && adult(state, &tenant, &patient, now).await?;
        if grown {
            if decide(who, Action::InviteGuarantor, &tenant, &patient, false, now).allowed() {
                vm.can_invite
                    .push((patient.to_string(), name.expose().clone()));
            }
            if decide(who, Action::RevokeGuarantor, &tenant, &patient, false, now).allowed() {
                let sharing = member_permit(
                    state,
                    ctx,
                    who,
                    MemberAsk {
                        action: Action::RevokeGuarantor,
                        tenant: &tenant,
                        patient: &patient,
                        event: "household.guarantors.view",
                        resource: None,
                    },
                )
                .await?;
                for g in guarantors::guarantors_of(&state.db, &state.crypto, &sharing).await? {
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
    for p in crate::payments::plans::of_member(&state.db, &who.id).await? {
        if p.needs_action().next().is_some() {
            vm.plan_notices.push(tr().t("account-plan-action"));
        }
        if let Some(n) = super::plans::upcoming_notice(&p) {
            vm.plan_notices.push(n);
        }
    }
    Ok(vm)
}

pub async fn statement(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let now = ctx.now;
    let id = StatementId::parse(&raw).ok_or(AppError::NotFound)?;
    let not_found = || unseen(&state, &ctx, actor_id(&who.id), "statement.not_found", &raw);
    let Some(h) = billing::statement_header(&state.db, &id).await? else {
        return Err(not_found().await);
    };
    // A statement of someone else looks exactly like one that does not exist.
    if !decide(
        &who,
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
    let grown_up = adult(&state, &h.tenant_id, &h.patient_id, now).await?;
    // Which descriptions this account may read: one policy decision per line.
    let shown: Vec<bool> = billing::confidential_flags(&state.db, &h)
        .await?
        .into_iter()
        .map(|confidential| {
            decide(
                &who,
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
    let permit = member_permit(
        &state,
        &ctx,
        &who,
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
        &who,
        Action::ViewCardDetails,
        &h.tenant_id,
        &h.patient_id,
        false,
        now,
    )
    .allowed();
    let lines = billing::lines(&state.db, &state.crypto, &h, &permit).await?;
    let paid = billing::payments(&state.db, &h.id, &permit).await?;
    let refunded = super::patient::refunds_by_payment(&state, &paid, &h.id).await?;
    let balance = billing::balance(state.db.pool(), &h.id).await?;
    let practice = practice_name(&state, &h.tenant_id).await?;
    let name = billing::first_name(&state.db, &state.crypto, &permit).await?;
    let errors = take_pay_errors(&session).await?;
    let vm = AccountStatementVm {
        csrf: session.csrf_token().await?,
        practice_name: practice.clone(),
        patient_name: name.expose().clone(),
        statement: open_statement_vm(
            &h,
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
    };
    Ok(Html(pages::statement(meta(&session).await?, vm)).into_response())
}

pub async fn receipt(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let id = PaymentId::parse(&raw).ok_or(AppError::NotFound)?;
    let not_found = || unseen(&state, &ctx, actor_id(&who.id), "receipt.not_found", &raw);
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
            &who,
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
                &who,
                Action::ViewCardDetails,
                &h.tenant_id,
                &h.patient_id,
                false,
                ctx.now,
            )
            .allowed()
        });
    let mut items = vec![];
    for (a, h) in headers {
        let permit = member_permit(
            &state,
            &ctx,
            &who,
            MemberAsk {
                action: Action::ViewReceipt,
                tenant: &h.tenant_id,
                patient: &h.patient_id,
                event: "payment.receipt.view",
                resource: Some(id.as_str()),
            },
        )
        .await?;
        items.push(ReceiptItemVm {
            patient_name: billing::first_name(&state.db, &state.crypto, &permit)
                .await?
                .into_inner(),
            practice_name: practice_name(&state, &h.tenant_id).await?,
            statement_date: iso(&h.statement_date),
            amount: a.amount.to_string(),
            new_balance: billing::balance(state.db.pool(), &h.id).await?.to_string(),
        });
    }
    let vm = AccountReceiptVm {
        amount: r.amount.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        card: own_card.then_some(CardVm {
            brand: r.card_brand,
            last4: r.card_last4,
        }),
        reference: id.to_string(),
        items,
        status: PaymentStatusVm::from_db(&r.status),
        refunds: super::patient::refund_lines(&state, &id, None).await?,
        taken_by: r.taken_by.map(super::patient::staff_or_unnamed),
    };
    Ok(Html(pages::receipt(meta(&session).await?, vm)).into_response())
}
