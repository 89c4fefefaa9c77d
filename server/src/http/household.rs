//! The account page: each person's open statements (own and dependants'), a statement with
//! clinical detail hidden where the policy says, and the receipt of how a payment split (their
//! view models are in `member_views`).

use super::error::Result;
use super::extract::Member;
use super::link_views::Shown;
use super::member::*;
use super::member_views::{account_receipt_vm, account_statement_vm};
use super::session::{PayErrors, PayItemError, Sess};
use super::{tr, AppState, RequestContext, Routes};
use crate::access::{Action, Role};
use crate::accounts::Account;
use crate::billing;
use crate::guarantors;
use crate::ids::StatementId;
use crate::money::Money;
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
pub(super) async fn take_pay_errors(session: &Sess) -> Result<PayErrors> {
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
    let vm = account_statement_vm(&state, &ctx, &session, &who, &raw, Shown::Page).await?;
    Ok(Html(pages::statement(meta(&session).await?, vm)).into_response())
}

pub async fn receipt(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let vm = account_receipt_vm(&state, &ctx, &who, &raw, Shown::Page).await?;
    Ok(Html(pages::receipt(meta(&session).await?, vm)).into_response())
}
