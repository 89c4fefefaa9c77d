//! The patient's pages: pay link → identity check → summary → itemised statement → pay →
//! receipt. Every form posts and redirects; every view of PHI is audited.

use super::error::AppError;
use super::session::{self as sess, Flash, Stage};
use super::{AppState, RequestContext};
use crate::access::{self, Action, Decision, Grant, Principal, Resource, Role};
use crate::audit::{self, Outcome};
use crate::billing;
use crate::ids::{CheckoutId, LinkId, PaymentId};
use crate::links::{self, LinkState, PayLink};
use crate::money::{AmountError, Money};
use crate::payments::{self, DeclineReason};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use patriotpay_app::pages;
use patriotpay_app::vm::*;
use patriotpay_app::Tr;
use tower_sessions::Session;

type Result<T> = std::result::Result<T, AppError>;

fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

fn tr() -> Tr {
    Tr::default()
}

async fn meta(session: &Session, practice: Option<String>) -> Result<PageMeta> {
    Ok(PageMeta {
        practice_name: practice,
        signout_csrf: Some(sess::csrf_token(session).await?),
        ..Default::default()
    })
}

/// The visitor's link and how far they have verified, re-read from the database each request
/// so a revoked or expired link stops working at once.
struct Visitor {
    link: Option<PayLink>,
    stage: Option<Stage>,
}

async fn visitor(state: &AppState, session: &Session) -> Result<Option<Visitor>> {
    let link_id: Option<String> = session.get(sess::KEY_LINK).await?;
    let dead: Option<bool> = session.get(sess::KEY_DEAD_LINK).await?;
    let link = match link_id {
        Some(id) => links::find(&state.db, &LinkId::from_db(id)).await?,
        None if dead == Some(true) => None,
        None => return Ok(None),
    };
    Ok(Some(Visitor {
        link,
        stage: session.get(sess::KEY_STAGE).await?,
    }))
}

/// A verified patient on a live link, or the response that sends them where they belong.
pub(super) async fn require(
    state: &AppState,
    session: &Session,
    needed: Stage,
) -> Result<std::result::Result<PayLink, Response>> {
    let Some(v) = visitor(state, session).await? else {
        return Ok(Err(see_other("/expired")));
    };
    let Some(link) = v.link else {
        return Ok(Err(see_other("/verify")));
    };
    match link.state(crate::clock::now_unix()) {
        LinkState::Usable => {}
        LinkState::Locked | LinkState::Dead => return Ok(Err(see_other("/verify"))),
    }
    match v.stage {
        Some(s) if s >= needed => Ok(Ok(link)),
        Some(_) => Ok(Err(see_other("/verify/zip"))),
        None => Ok(Err(see_other("/verify"))),
    }
}

/// Asks the policy on behalf of the patient holding this link.
fn allowed(state: &AppState, link: &PayLink, action: Action) -> Result<()> {
    let who = Principal {
        user: format!("link:{}", link.id),
        grants: vec![Grant {
            role: Role::Patient,
            tenant: Some(link.tenant_id.clone()),
            patients: [link.patient_id.clone()].into(),
            expires_at: None,
        }],
        mfa: false,
        impersonating: false,
    };
    let on = Resource {
        tenant: &link.tenant_id,
        patient: Some(&link.patient_id),
        clinical_restricted: false,
    };
    match access::decide(&who, action, &on, state.clock.now()) {
        Decision::Allow => Ok(()),
        Decision::Deny(_) => Err(AppError::NotFound),
    }
}

async fn audit_view(
    state: &AppState,
    ctx: &RequestContext,
    link: &PayLink,
    action: &'static str,
    resource: &str,
    outcome: Outcome,
) -> Result<()> {
    audit::record(
        state.db.pool(),
        audit::Event {
            actor: &ctx.actor(format!("link:{}", link.id)),
            tenant: Some(&link.tenant_id),
            patient: Some(&link.patient_id),
            action,
            resource: Some(resource),
            outcome,
        },
    )
    .await?;
    Ok(())
}

pub async fn home() -> Html<String> {
    Html(pages::home(PageMeta::default()))
}

/// Swaps the token in the link for a fresh session and redirects to a URL without it.
pub async fn open_link(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response> {
    sess::restart(&session, state.clock.now()).await?;
    match links::find_by_token(&state.db, &token).await? {
        Some(link) => {
            session.insert(sess::KEY_LINK, link.id.as_str()).await?;
            let usable = link.state(crate::clock::now_unix()) == LinkState::Usable;
            if usable {
                links::mark_used(&state.db, &link.id).await?;
            }
            let outcome = if usable {
                Outcome::Success
            } else {
                Outcome::Denied
            };
            audit_view(
                &state,
                &ctx,
                &link,
                "paylink.open",
                link.id.as_str(),
                outcome,
            )
            .await?;
        }
        None => session.insert(sess::KEY_DEAD_LINK, true).await?,
    }
    Ok(see_other("/verify"))
}

#[derive(serde::Deserialize)]
pub struct DobForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dob_month: String,
    #[serde(default)]
    dob_day: String,
    #[serde(default)]
    dob_year: String,
}

async fn practice_of(state: &AppState, link: &PayLink) -> Result<billing::Tenant> {
    billing::tenant(&state.db, &link.tenant_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("link's practice is missing")))
}

async fn render_locked(state: &AppState, session: &Session, link: &PayLink) -> Result<Response> {
    let t = practice_of(state, link).await?;
    let vm = LockedVm {
        practice_name: Some(t.name.clone()),
        practice_phone: Some(t.support_phone),
    };
    Ok(Html(pages::locked(meta(session, Some(t.name)).await?, vm)).into_response())
}

pub async fn verify_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    let Some(v) = visitor(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = crate::clock::now_unix();
    let live = v.link.as_ref().filter(|l| l.state(now) != LinkState::Dead);
    if let Some(link) = live {
        if link.state(now) == LinkState::Locked {
            return render_locked(&state, &session, link).await;
        }
        if v.stage.is_some() {
            return Ok(see_other("/summary"));
        }
    }
    // An expired, revoked or unknown link gets the same page as a live one, minus the practice.
    let practice = match live {
        Some(link) => Some(practice_of(&state, link).await?.name),
        None => None,
    };
    let flash = sess::take_flash(&session).await?;
    let tr = tr();
    let mut vm = VerifyDobVm {
        practice_name: practice.clone(),
        csrf: sess::csrf_token(&session).await?,
        ..Default::default()
    };
    let mut status = StatusCode::OK;
    if let Some(f) = flash {
        (vm.field_error, vm.failure) = f.placed(&["dob-month"], tr.t(&f.key));
        if f.key == "verify-rate-limited" {
            status = StatusCode::TOO_MANY_REQUESTS;
        }
    }
    Ok((
        status,
        Html(pages::verify_dob(meta(&session, practice).await?, vm)),
    )
        .into_response())
}

/// Reserves an identity attempt, or answers for a locked link (the locked page) or a throttled
/// visitor (back to `back` with the message).
async fn claim(
    state: &AppState,
    session: &Session,
    link: Option<&PayLink>,
    address: &str,
    now: i64,
    back: &str,
) -> Result<std::result::Result<i64, Response>> {
    match links::claim_attempt(&state.db, link, address, now).await? {
        links::Claim::Granted { attempt } => Ok(Ok(attempt)),
        links::Claim::Locked => Ok(Err(see_other("/verify"))),
        links::Claim::Throttled => {
            sess::set_flash(
                session,
                Flash {
                    key: "verify-rate-limited".into(),
                    ..Default::default()
                },
            )
            .await?;
            Ok(Err(see_other(back)))
        }
    }
}

pub async fn verify_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<DobForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let Some(v) = visitor(&state, &session).await? else {
        return Ok(see_other("/expired"));
    };
    let now = state.clock.now();
    let link = v.link.filter(|l| l.state(now) != LinkState::Dead);
    if link
        .as_ref()
        .is_some_and(|l| l.state(now) == LinkState::Locked)
    {
        return Ok(see_other("/verify"));
    }
    // A date that doesn't exist is a typo, not a wrong answer: refused before anything counts.
    let Some(given) = links::parse_dob(&form.dob_month, &form.dob_day, &form.dob_year) else {
        let flash = Flash {
            key: "verify-invalid-date".into(),
            field: Some("dob-month".into()),
            ..Default::default()
        };
        sess::set_flash(&session, flash).await?;
        return Ok(see_other("/verify"));
    };
    let attempt = match claim(
        &state,
        &session,
        link.as_ref(),
        &ctx.address,
        now,
        "/verify",
    )
    .await?
    {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let matched = match &link {
        Some(link) => {
            let answers = billing::identity_answers(
                &state.db,
                &state.crypto,
                &link.tenant_id,
                &link.patient_id,
            )
            .await;
            match answers {
                Ok((dob, _)) => links::answers_match(&given, dob.expose()),
                Err(e) => {
                    // Not the patient's fault (e.g. the key provider is down): give the attempt back.
                    links::settle_attempt(&state.db, Some(link), attempt, false, now).await?;
                    return Err(e.into());
                }
            }
        }
        None => false,
    };
    let locked = links::settle_attempt(&state.db, link.as_ref(), attempt, !matched, now).await?;
    if !matched {
        if let Some(link) = &link {
            audit_view(
                &state,
                &ctx,
                link,
                "identity.dob",
                link.id.as_str(),
                Outcome::Denied,
            )
            .await?;
            if locked {
                audit_view(
                    &state,
                    &ctx,
                    link,
                    "paylink.locked",
                    link.id.as_str(),
                    Outcome::Denied,
                )
                .await?;
            }
        }
        sess::set_flash(
            &session,
            Flash {
                key: "verify-failed".into(),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/verify"));
    }
    let Some(link) = link else {
        return Ok(see_other("/verify"));
    };
    // Privilege changes: new session id.
    session.cycle_id().await?;
    session.insert(sess::KEY_STAGE, Stage::Dob).await?;
    audit_view(
        &state,
        &ctx,
        &link,
        "identity.dob",
        link.id.as_str(),
        Outcome::Success,
    )
    .await?;
    Ok(see_other("/summary"))
}

#[derive(serde::Deserialize)]
pub struct ZipForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    zip: String,
}

pub async fn zip_form(State(state): State<AppState>, session: Session) -> Result<Response> {
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    if session.get::<Stage>(sess::KEY_STAGE).await? == Some(Stage::Full) {
        return Ok(see_other("/statement"));
    }
    let practice = practice_of(&state, &link).await?;
    let mut vm = VerifyZipVm {
        csrf: sess::csrf_token(&session).await?,
        ..Default::default()
    };
    if let Some(f) = sess::take_flash(&session).await? {
        (vm.field_error, vm.failure) = f.placed(&["zip"], tr().t(&f.key));
    }
    Ok(Html(pages::verify_zip(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

pub async fn zip_submit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<ZipForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let Some(given) = links::normalize_zip(&form.zip) else {
        let flash = Flash {
            key: "zip-invalid".into(),
            field: Some("zip".into()),
            ..Default::default()
        };
        sess::set_flash(&session, flash).await?;
        return Ok(see_other("/verify/zip"));
    };
    let now = state.clock.now();
    let attempt = match claim(
        &state,
        &session,
        Some(&link),
        &ctx.address,
        now,
        "/verify/zip",
    )
    .await?
    {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let on_file = match billing::identity_answers(
        &state.db,
        &state.crypto,
        &link.tenant_id,
        &link.patient_id,
    )
    .await
    {
        Ok((_, zip)) => links::normalize_zip(zip.expose()).unwrap_or_default(),
        Err(e) => {
            links::settle_attempt(&state.db, Some(&link), attempt, false, now).await?;
            return Err(e.into());
        }
    };
    let matched = links::answers_match(&given, &on_file);
    let locked = links::settle_attempt(&state.db, Some(&link), attempt, !matched, now).await?;
    if !matched {
        audit_view(
            &state,
            &ctx,
            &link,
            "identity.zip",
            link.id.as_str(),
            Outcome::Denied,
        )
        .await?;
        if locked {
            audit_view(
                &state,
                &ctx,
                &link,
                "paylink.locked",
                link.id.as_str(),
                Outcome::Denied,
            )
            .await?;
            return Ok(see_other("/verify"));
        }
        sess::set_flash(
            &session,
            Flash {
                key: "zip-failed".into(),
                ..Default::default()
            },
        )
        .await?;
        return Ok(see_other("/verify/zip"));
    }
    session.cycle_id().await?;
    session.insert(sess::KEY_STAGE, Stage::Full).await?;
    let next: Option<String> = session.remove(sess::KEY_NEXT).await?;
    audit_view(
        &state,
        &ctx,
        &link,
        "identity.zip",
        link.id.as_str(),
        Outcome::Success,
    )
    .await?;
    // Only our own one known destination; never a path from the request.
    let to = match next.as_deref() {
        Some("/account/create") => "/account/create",
        Some("/account/reset-password") => "/account/reset-password",
        _ => "/statement",
    };
    Ok(see_other(to))
}

/// The payment form's view model, with any error carried over from a refused POST.
async fn pay_form(
    session: &Session,
    balance: Money,
    from: &'static str,
    flash: Option<Flash>,
) -> Result<PayFormVm> {
    let mut vm = PayFormVm {
        csrf: sess::csrf_token(session).await?,
        balance: balance.to_string(),
        amount: balance.plain(),
        error: None,
        from,
    };
    if let Some(f) = flash {
        let message = match &f.arg {
            Some(arg) => tr().ta(&f.key, &[("balance", arg)]),
            None => tr().t(&f.key),
        };
        vm.amount = f.value.unwrap_or_default();
        vm.error = Some(FieldError {
            field: "amount",
            message,
        });
    }
    Ok(vm)
}

fn iso(d: &str) -> String {
    crate::clock::display_iso_date(d)
}

pub async fn summary(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::ViewBalance)?;
    let header = billing::statement_header(&state.db, &link.statement_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let practice = practice_of(&state, &link).await?;
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    audit_view(
        &state,
        &ctx,
        &link,
        "statement.summary.view",
        link.statement_id.as_str(),
        Outcome::Success,
    )
    .await?;
    let flash = sess::take_flash(&session).await?;
    let vm = SummaryVm {
        practice_name: practice.name.clone(),
        statement_date: iso(&header.statement_date),
        due_date: iso(&header.due_date),
        balance: balance.to_string(),
        paid_in_full: !balance.is_positive(),
        itemised_unlocked: session.get::<Stage>(sess::KEY_STAGE).await? == Some(Stage::Full),
        pay: pay_form(&session, balance, "summary", flash).await?,
    };
    Ok(Html(pages::summary(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

pub async fn statement(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
) -> Result<Response> {
    let link = match require(&state, &session, Stage::Full).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::ViewItemisedStatement)?;
    let header = billing::statement_header(&state.db, &link.statement_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let practice = practice_of(&state, &link).await?;
    let lines = billing::lines(&state.db, &state.crypto, &header).await?;
    let paid = billing::payments(&state.db, &link.statement_id).await?;
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    audit_view(
        &state,
        &ctx,
        &link,
        "statement.itemised.view",
        link.statement_id.as_str(),
        Outcome::Success,
    )
    .await?;
    let sum = |f: fn(&billing::Line) -> Money| {
        Money::from_cents(lines.iter().map(|l| f(l).cents()).sum())
    };
    let totals = LineVm {
        charge: sum(|l| l.charge).to_string(),
        insurance_paid: sum(|l| l.insurance_paid).to_string(),
        adjustment: sum(|l| l.adjustment).to_string(),
        responsibility: sum(|l| l.patient_responsibility).to_string(),
        ..Default::default()
    };
    let flash = sess::take_flash(&session).await?;
    // The way back from a forgotten password: both answers were just given on this link.
    let offer_password_reset =
        crate::guarantors::patient_account(&state.db, &state.crypto, &link.patient_id)
            .await?
            .is_some();
    let vm = StatementVm {
        offer_password_reset,
        practice_name: practice.name.clone(),
        statement_date: iso(&header.statement_date),
        due_date: iso(&header.due_date),
        lines: lines
            .iter()
            .map(|l| LineVm {
                service_date: iso(l.service_date.expose()),
                description: l.description.expose().clone(),
                charge: l.charge.to_string(),
                insurance_paid: l.insurance_paid.to_string(),
                adjustment: l.adjustment.to_string(),
                responsibility: l.patient_responsibility.to_string(),
            })
            .collect(),
        totals,
        payments: paid
            .iter()
            .map(|p| PaymentVm {
                date: crate::clock::display_date_unix(p.paid_at),
                amount: p.amount.to_string(),
                brand: p.card_brand.clone(),
                last4: p.card_last4.clone(),
            })
            .collect(),
        balance: balance.to_string(),
        paid_in_full: !balance.is_positive(),
        pay: pay_form(&session, balance, "statement", flash).await?,
    };
    Ok(Html(pages::statement(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct PayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    from: String,
}

pub async fn pay(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Form(form): Form<PayForm>,
) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::MakePayment)?;
    let back = if form.from == "statement" {
        "/statement"
    } else {
        "/summary"
    };
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let amount = match Money::parse_payment(&form.amount, balance) {
        Ok(a) => a,
        Err(e) => {
            let (key, arg) = match e {
                AmountError::Empty => ("pay-err-empty", None),
                AmountError::Format => ("pay-err-format", None),
                AmountError::Negative => ("pay-err-negative", None),
                AmountError::Zero => ("pay-err-zero", None),
                AmountError::OverBalance => ("pay-err-over", Some(balance.to_string())),
                AmountError::NothingDue => ("pay-err-nothing-due", None),
            };
            // Only the amount typed is kept (trimmed to a sane length): never PHI.
            let value: String = form.amount.chars().take(32).collect();
            let flash = Flash {
                key: key.into(),
                field: Some("amount".into()),
                value: Some(value),
                arg,
            };
            sess::set_flash(&session, flash).await?;
            return Ok(see_other(back));
        }
    };
    let actor = ctx.actor(format!("link:{}", link.id));
    let plan = payments::CheckoutPlan {
        tenant: link.tenant_id.clone(),
        items: vec![(link.statement_id.clone(), amount)],
        patients: vec![link.patient_id.clone()],
        link: Some(link.id.clone()),
        user: None,
        return_prefix: "/pay",
    };
    match payments::start_checkout(
        &state.db,
        state.processor.as_ref(),
        &plan,
        &state.public_url,
        &actor,
    )
    .await
    {
        Ok(url) => Ok(see_other(&url)),
        Err(payments::PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "checkout could not be created");
            let flash = Flash {
                key: "pay-err-processor".into(),
                field: Some("amount".into()),
                value: Some(amount.plain()),
                arg: None,
            };
            sess::set_flash(&session, flash).await?;
            Ok(see_other(back))
        }
        Err(payments::PaymentError::Pending) => {
            let flash = Flash {
                key: "pay-err-pending".into(),
                field: Some("amount".into()),
                value: Some(amount.plain()),
                arg: None,
            };
            sess::set_flash(&session, flash).await?;
            Ok(see_other(back))
        }
        Err(e) => Err(AppError::Internal(e.into())),
    }
}

/// Our checkout, if it belongs to the visitor's statement; 404 otherwise (another patient's
/// checkout id looks exactly like one that does not exist).
async fn own_checkout(
    state: &AppState,
    link: &PayLink,
    raw: &str,
) -> Result<payments::CheckoutRow> {
    let id = CheckoutId::parse(raw).ok_or(AppError::NotFound)?;
    let row = payments::find_checkout(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.link_id.as_ref() != Some(&link.id)
        || row.statement_id.as_ref() != Some(&link.statement_id)
        || row.tenant_id != link.tenant_id
    {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

#[derive(serde::Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    session_id: String,
}

/// Where the processor sends the patient after paying. The payment itself is recorded by the
/// webhook; this page only waits for it.
pub async fn pay_return(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::MakePayment)?;
    let checkout = own_checkout(&state, &link, &raw).await?;
    let practice = practice_of(&state, &link).await?;
    let meta = meta(&session, Some(practice.name)).await?;
    back_from_processor(&state, &checkout, &q.session_id, "", meta).await
}

/// The return from the processor's page, for a checkout the visitor owns: the receipt once the
/// webhook recorded the payment, the cancelled page if nothing was paid, else a page that
/// refreshes until the webhook arrives. `prefix` is "" (pay links) or "/account".
pub(super) async fn back_from_processor(
    state: &AppState,
    checkout: &payments::CheckoutRow,
    session_id: &str,
    prefix: &str,
    meta: PageMeta,
) -> Result<Response> {
    if checkout.processor_session_id.as_deref() != Some(session_id) {
        return Err(AppError::NotFound);
    }
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(&format!("{prefix}/receipt/{payment}")));
    }
    let processor_checkout = state
        .processor
        .retrieve_checkout(session_id)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    if !processor_checkout.paid {
        return Ok(see_other(&format!(
            "{prefix}/pay/cancelled/{}",
            checkout.id
        )));
    }
    let vm = ConfirmingVm {
        refresh_path: format!(
            "{prefix}/pay/return/{}?session_id={session_id}",
            checkout.id
        ),
    };
    Ok(Html(pages::confirming(meta, vm)).into_response())
}

pub async fn pay_cancelled(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::MakePayment)?;
    let checkout = own_checkout(&state, &link, &raw).await?;
    if let Some(payment) = payments::payment_for_checkout(&state.db, &checkout.id).await? {
        return Ok(see_other(&format!("/receipt/{payment}")));
    }
    let kind = match payments::decline_reason(state.processor.as_ref(), &checkout)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?
    {
        Some(DeclineReason::InsufficientFunds) => DeclineKind::InsufficientFunds,
        Some(DeclineReason::Generic) => DeclineKind::Declined,
        None => DeclineKind::Cancelled,
    };
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let practice = practice_of(&state, &link).await?;
    let flash = sess::take_flash(&session).await?;
    let vm = DeclinedVm {
        kind,
        pay: pay_form(&session, balance, "summary", flash).await?,
        paid_in_full: !balance.is_positive(),
    };
    Ok(Html(pages::declined(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

pub async fn receipt(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response> {
    let link = match require(&state, &session, Stage::Dob).await? {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    allowed(&state, &link, Action::ViewReceipt)?;
    let id = PaymentId::parse(&raw).ok_or(AppError::NotFound)?;
    let r = payments::receipt(&state.db, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !r.covers(&link.statement_id) {
        return Err(AppError::NotFound);
    }
    let balance = billing::balance(state.db.pool(), &link.statement_id).await?;
    let practice = practice_of(&state, &link).await?;
    audit_view(
        &state,
        &ctx,
        &link,
        "payment.receipt.view",
        id.as_str(),
        Outcome::Success,
    )
    .await?;
    // Accounts are offered to adult patients without one signed in (see http/account.rs).
    let offer_account = session.get::<String>(sess::KEY_MEMBER).await?.is_none() && {
        let (dob, _) =
            billing::identity_answers(&state.db, &state.crypto, &link.tenant_id, &link.patient_id)
                .await?;
        crate::guarantors::is_adult(dob.expose(), state.clock.now())
    };
    let vm = ReceiptVm {
        practice_name: practice.name.clone(),
        amount: r.amount.to_string(),
        date: crate::clock::display_date_unix(r.paid_at),
        brand: r.card_brand,
        last4: r.card_last4,
        reference: id.to_string(),
        new_balance: balance.to_string(),
        offer_account,
    };
    Ok(Html(pages::receipt(
        meta(&session, Some(practice.name)).await?,
        vm,
    ))
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn signout(session: Session, Form(form): Form<CsrfOnly>) -> Result<Response> {
    if !sess::csrf_ok(&session, &form.csrf).await? {
        return Err(AppError::Forbidden);
    }
    // Removes the server-side record, not just the cookie.
    session.flush().await?;
    Ok(see_other("/signed-out"))
}

pub async fn signed_out() -> Html<String> {
    Html(pages::notice(PageMeta::default(), NoticeKind::SignedOut))
}

pub async fn expired() -> Html<String> {
    Html(pages::notice(
        PageMeta::default(),
        NoticeKind::SessionExpired,
    ))
}
