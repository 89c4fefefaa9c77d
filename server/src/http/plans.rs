//! A member's payment plans: the page (each plan's schedule and notices, and the set-up form
//! over statements they may pay), setting one up (its first instalment charged at once),
//! changing the cap, cancelling, and paying on the processor's page an instalment autopay
//! could not take. Every statement is asked of the policy; a plan is its member's alone.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, Member};
use super::member::*;
use super::patient::{start_checkout, Checkout};
use super::session::{Flash, Sess};
use super::{see_other, to_processor_checkout, tr, AppState, RequestContext, Routes};
use crate::access::Action;
use crate::accounts::Account;
use crate::billing;
use crate::clock::display_date_unix;
use crate::ids::{PatientId, PlanId, StatementId, TenantId};
use crate::money::Money;
use crate::payments::plans::{
    self, scheduler, Every, InstalmentRef, InstalmentStatus, Plan, PlanError, PlanRequest,
    PlanStatus, MAX_INSTALMENTS, MIN_INSTALMENTS,
};
use crate::payments::{self, cards, PaymentError};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{
    household_pay::CHECKED, plan_form, PlanCapForm, PlanForm, PlanPayForm,
};
use patriotpay_app::urls::Url;
use patriotpay_app::vm_plans::{InstalmentVm, PlanStatementVm, PlanVm, PlansVm};

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .phi_page(Url::AccountPlans, page)
        .phi_form(Url::AccountPlanCreate, create)
        .form(Url::AccountPlanCancel, cancel)
        .form(Url::AccountPlanCap, cap)
        .phi_form(Url::AccountPlanPay, pay)
}

/// Flash marker for a refusal (shown as a failure, not a notice).
const FAILURE_FIELD: &str = "plans-failure";

async fn refuse(session: &Sess, key: &str) -> Result<Response> {
    session.set_flash(Flash::on(FAILURE_FIELD, key)).await?;
    Ok(see_other(Url::AccountPlans))
}

async fn told(session: &Sess, key: &str) -> Result<Response> {
    session.notice(key).await?;
    Ok(see_other(Url::AccountPlans))
}

fn card_label(brand: &str, last4: &str) -> String {
    tr().ta("plan-card", &[("brand", brand), ("last4", last4)])
}

fn every_label(e: Every) -> String {
    tr().t(&format!("plan-every-{}", e.as_str()))
}

/// How a plan's instalment reads on the page.
fn instalment_vm(i: &plans::Instalment) -> InstalmentVm {
    let status = match i.status {
        InstalmentStatus::Retrying => tr().ta(
            "plan-inst-retrying",
            &[(
                "date",
                &display_date_unix(i.next_attempt_at.unwrap_or(i.due_at)),
            )],
        ),
        s => tr().t(&format!("plan-inst-{}", s.as_str())),
    };
    InstalmentVm {
        seq: i.seq,
        due: display_date_unix(i.due_at),
        amount: i.amount.to_string(),
        status,
        action: (i.status == InstalmentStatus::ActionRequired).then(|| {
            tr().t(&format!(
                "plan-why-{}",
                i.last_error.as_deref().unwrap_or("declined")
            ))
        }),
    }
}

/// The notice of the next charge, once given; what is shown until the message outbox
/// delivers it by text or email.
pub(super) fn upcoming_notice(p: &Plan) -> Option<String> {
    if p.status != PlanStatus::Active {
        return None;
    }
    let next = p.upcoming()?;
    next.noticed_at?;
    let when = next.next_attempt_at.unwrap_or(next.due_at).max(next.due_at);
    Some(tr().ta(
        "plan-upcoming",
        &[
            ("amount", &next.amount.to_string()),
            ("card", &card_label(&p.card_brand, &p.card_last4)),
            ("date", &display_date_unix(when)),
        ],
    ))
}

async fn plan_vm(state: &AppState, p: &Plan) -> Result<PlanVm> {
    Ok(PlanVm {
        id: p.id.to_string(),
        practice_name: practice_name(state, &p.tenant).await?,
        status: tr().t(&format!("plan-status-{}", p.status.as_str())),
        open: matches!(p.status, PlanStatus::Active | PlanStatus::Suspended),
        total: p.total.to_string(),
        paid: p.paid().to_string(),
        card: card_label(&p.card_brand, &p.card_last4),
        every: every_label(p.every),
        cap: p.cap.plain(),
        upcoming: upcoming_notice(p),
        instalments: p.instalments.iter().map(instalment_vm).collect(),
    })
}

/// Statements with a balance that the member may pay and that no running plan holds.
async fn plannable(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
) -> Result<Vec<PlanStatementVm>> {
    let mut out = vec![];
    for (_, tenant, patient) in people(who) {
        if !decide(who, Action::MakePayment, &tenant, &patient, false, ctx.now).allowed() {
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
                event: "plan.setup.view",
                resource: None,
            },
        )
        .await?;
        let name = billing::first_name(&state.db, &state.crypto, &permit).await?;
        let practice = practice_name(state, &tenant).await?;
        for (h, balance) in billing::statements_of(&state.db, &tenant, &patient).await? {
            if !balance.is_positive() || in_running_plan(state, &h.id).await? {
                continue;
            }
            out.push(PlanStatementVm {
                id: h.id.to_string(),
                patient_name: name.expose().clone(),
                practice_name: practice.clone(),
                statement_date: iso(&h.statement_date),
                balance: balance.to_string(),
            });
        }
    }
    Ok(out)
}

async fn in_running_plan(state: &AppState, statement: &StatementId) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM plan_statements WHERE statement_id = $1 AND live = 1",
    )
    .bind(statement.as_str())
    .fetch_one(state.db.pool())
    .await?;
    Ok(n > 0)
}

pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
) -> Result<Response> {
    let mut vm = PlansVm {
        csrf: session.csrf_token().await?,
        counts: (MIN_INSTALMENTS..=MAX_INSTALMENTS).collect(),
        schedules: Every::ALL
            .iter()
            .map(|e| (e.as_str().to_owned(), every_label(*e)))
            .collect(),
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        if f.field.as_deref() == Some(FAILURE_FIELD) {
            vm.failure = Some(tr().t(&f.key));
        } else {
            vm.notice = Some(tr().t(&f.key));
        }
    }
    for p in plans::of_member(&state.db, &who.id).await? {
        vm.plans.push(plan_vm(&state, &p).await?);
    }
    vm.statements = plannable(&state, &ctx, &who).await?;
    if !vm.statements.is_empty() {
        match cards::list(&state.db, state.processor.as_ref(), &who.id).await {
            Ok(list) => {
                vm.cards = list
                    .into_iter()
                    .map(|c| {
                        let label = card_label(&c.brand, &c.last4);
                        (c.id, label)
                    })
                    .collect();
            }
            Err(PaymentError::Processor(e)) => {
                tracing::warn!(error = %e, "plans: saved cards unavailable");
                vm.failure = Some(tr().t("account-cards-unavailable"));
            }
            Err(PaymentError::Db(d)) => return Err(d.into()),
            Err(e) => return Err(AppError::Internal(e.into())),
        }
        let mut rules = vec![];
        let mut seen: Vec<TenantId> = vec![];
        for (_, tenant, _) in people(&who) {
            if seen.contains(&tenant) {
                continue;
            }
            let min = plans::minimum_instalment(&state.db, &tenant).await?;
            rules.push(tr().ta(
                "plan-rules",
                &[
                    ("practice", &practice_name(&state, &tenant).await?),
                    ("min", &min.to_string()),
                ],
            ));
            seen.push(tenant);
        }
        vm.rules = (!rules.is_empty()).then(|| rules.join(" "));
    }
    Ok(Html(patriotpay_app::account::plans(meta(&session).await?, vm)).into_response())
}

/// What the set-up form chose: statements of one practice and the patients concerned, or a
/// refusal (a message key) before anything else is asked.
enum Chosen {
    Statements {
        tenant: TenantId,
        ids: Vec<StatementId>,
        patients: Vec<PatientId>,
    },
    Refused(&'static str),
}

/// The statements chosen on the set-up form, each asked of the policy: one practice, the
/// patients concerned.
async fn chosen(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    pairs: &[(String, String)],
) -> Result<Chosen> {
    let mut ids: Vec<StatementId> = vec![];
    for (k, v) in pairs {
        if let Some(id) = plan_form::chosen_statement(k).and_then(StatementId::parse) {
            if v == CHECKED && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    // Counted before any lookup, so an oversized form costs nothing.
    if ids.len() > plans::MAX_STATEMENTS {
        return Ok(Chosen::Refused("plan-too-many"));
    }
    if ids.is_empty() {
        return Ok(Chosen::Refused("plan-none"));
    }
    let mut tenant: Option<TenantId> = None;
    let mut patients = vec![];
    for id in &ids {
        let h = payable_statement(state, ctx, who, id, "plan.setup.ask", Some(id.as_str())).await?;
        match &tenant {
            None => tenant = Some(h.tenant_id.clone()),
            Some(t) if *t != h.tenant_id => return Ok(Chosen::Refused("plan-one-practice")),
            Some(_) => {}
        }
        if !patients.contains(&h.patient_id) {
            patients.push(h.patient_id.clone());
        }
    }
    match tenant {
        Some(tenant) => Ok(Chosen::Statements {
            tenant,
            ids,
            patients,
        }),
        None => Ok(Chosen::Refused("plan-none")),
    }
}

/// Sets a plan up and charges its first instalment now. A card refused for it leaves no plan
/// behind; one the processor did not answer for is repeated by autopay (same key).
pub async fn create(
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
            .unwrap_or("")
    };
    let (tenant, statements, patients) = match chosen(&state, &ctx, &who, &pairs).await? {
        Chosen::Statements {
            tenant,
            ids,
            patients,
        } => (tenant, ids, patients),
        Chosen::Refused(key) => return refuse(&session, key).await,
    };
    let Ok(count) = field(plan_form::COUNT).trim().parse::<u32>() else {
        return refuse(&session, "plan-count").await;
    };
    let Some(every) = Every::parse(field(plan_form::EVERY)) else {
        return refuse(&session, "plan-every").await;
    };
    let Ok(cap) = Money::parse_dollars(field(plan_form::CAP)) else {
        return refuse(&session, "plan-cap-invalid").await;
    };
    if field(plan_form::CONSENT) != CHECKED {
        return refuse(&session, "plan-consent-missing").await;
    }
    let card_id = field(plan_form::CARD);
    let saved = match cards::list(&state.db, state.processor.as_ref(), &who.id).await {
        Ok(list) => list,
        Err(PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "plans: saved cards unavailable");
            return refuse(&session, "account-cards-unavailable").await;
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let Some(card) = saved.into_iter().find(|c| c.id == card_id) else {
        return refuse(&session, "plan-card-missing").await;
    };
    let req = PlanRequest {
        tenant,
        user: who.id.clone(),
        statements,
        patients,
        card_id: card.id,
        card_brand: card.brand,
        card_last4: card.last4,
        count,
        every,
        cap,
    };
    // The member is here: a checkout they began on these statements and left is expired first,
    // as paying does; one being paid right now refuses.
    match payments::free_statements(
        &state.db,
        state.processor.as_ref(),
        &state.alerts,
        &req.statements,
        ctx.now,
    )
    .await
    {
        Ok(()) => {}
        Err(PaymentError::Pending) => return refuse(&session, "plan-busy").await,
        Err(PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "plans: could not free the statements");
            return refuse(&session, "plan-unavailable-pay").await;
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    }
    let actor = ctx.actor(actor_id(&who.id));
    let plan = match plans::create(&state.db, &req, &actor, ctx.now).await {
        Ok(id) => id,
        Err(PlanError::Refused(key)) => return refuse(&session, key).await,
        Err(PlanError::Payment(e)) => return Err(AppError::Internal(e.into())),
    };
    let first = InstalmentRef {
        plan: plan.clone(),
        seq: 1,
    };
    let step = scheduler::charge(
        &state.db,
        &state.audit,
        state.processor.as_ref(),
        &state.alerts,
        &first,
        ctx.now,
    )
    .await
    .map_err(|e| AppError::Internal(e.into()))?;
    let undo = match step {
        scheduler::Step::Paid | scheduler::Step::Completed => {
            return told(&session, "plan-created").await
        }
        scheduler::Step::ActionRequired(_) => return told(&session, "plan-created-confirm").await,
        // The processor did not answer (or a payment of the member's holds a statement): the
        // plan stands and autopay repeats the same request (same key) shortly. Cancelling here
        // would invite a second set-up, and a second charge if the first had gone through.
        scheduler::Step::Later => return told(&session, "plan-created-pending").await,
        scheduler::Step::WillRetry | scheduler::Step::Suspended => "plan-first-declined",
        scheduler::Step::Skipped | scheduler::Step::Noticed => "plan-unavailable",
    };
    // No plan runs on a first instalment that was refused.
    if let Some(p) = plans::find(&state.db, &plan).await? {
        plans::cancel(&state.db, &p, &actor, ctx.now).await?;
    }
    refuse(&session, undo).await
}

/// One of the member's own plans; someone else's (or none) is "not found", recorded.
async fn own_plan(
    state: &AppState,
    ctx: &RequestContext,
    who: &Account,
    raw: &str,
) -> Result<Plan> {
    let plan = match PlanId::parse(raw) {
        Some(id) => plans::find(&state.db, &id).await?,
        None => None,
    };
    match plan.filter(|p| p.user == who.id) {
        Some(p) => Ok(p),
        None => Err(unseen(state, ctx, actor_id(&who.id), "plan.not_found", raw).await),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<PlanForm>,
) -> Result<Response> {
    let plan = own_plan(&state, &ctx, &who, &form.plan).await?;
    let actor = ctx.actor(actor_id(&who.id));
    if plans::cancel(&state.db, &plan, &actor, ctx.now).await? {
        told(&session, "plan-canceled").await
    } else {
        refuse(&session, "plan-not-canceled").await
    }
}

pub async fn cap(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<PlanCapForm>,
) -> Result<Response> {
    let plan = own_plan(&state, &ctx, &who, &form.plan).await?;
    let Ok(cap) = Money::parse_dollars(&form.cap) else {
        return refuse(&session, "plan-cap-invalid").await;
    };
    let actor = ctx.actor(actor_id(&who.id));
    match plans::set_cap(&state.db, &plan, cap, &actor, ctx.now).await {
        Ok(()) => told(&session, "plan-cap-changed").await,
        Err(PlanError::Refused(key)) => refuse(&session, key).await,
        Err(PlanError::Payment(e)) => Err(AppError::Internal(e.into())),
    }
}

/// Pays an instalment autopay could not take on the processor's page, as any payment; the
/// instalment is paid when that payment is booked.
pub async fn pay(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<PlanPayForm>,
) -> Result<Response> {
    let plan = own_plan(&state, &ctx, &who, &form.plan).await?;
    let Some(inst) = form
        .seq
        .parse::<i64>()
        .ok()
        .and_then(|seq| plan.instalments.iter().find(|i| i.seq == seq))
        .filter(|i| i.status == InstalmentStatus::ActionRequired)
    else {
        return refuse(&session, "plan-not-needed").await;
    };
    let items = scheduler::allocation(&state.db, &plan.id, inst.amount).await?;
    if items.is_empty() {
        return refuse(&session, "plan-not-needed").await;
    }
    let mut patients = vec![];
    for (statement, _) in &items {
        let h = payable_statement(
            &state,
            &ctx,
            &who,
            statement,
            "payment.checkout.ask",
            Some(statement.as_str()),
        )
        .await?;
        if !patients.contains(&h.patient_id) {
            patients.push(h.patient_id);
        }
    }
    let checkout = payments::CheckoutPlan {
        tenant: plan.tenant.clone(),
        items,
        patients,
        link: None,
        user: Some(who.id.clone()),
        // The processor comes back to `Url::AccountPayReturn`/`…Cancelled`, as any payment.
        return_prefix: Url::AccountPay.template(),
        instalment: Some(InstalmentRef {
            plan: plan.id.clone(),
            seq: inst.seq,
        }),
    };
    let actor = ctx.actor(actor_id(&who.id));
    match start_checkout(&state, &checkout, &actor).await? {
        Checkout::Started(url) => Ok(to_processor_checkout(&url)),
        Checkout::Problem("pay-err-pending") => refuse(&session, "plan-busy").await,
        Checkout::Problem(_) => refuse(&session, "plan-unavailable-pay").await,
    }
}
