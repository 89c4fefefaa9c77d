//! "Is this text really from my practice?" (`Url::CheckLink`, issue 13): anyone pastes a pay link
//! and learns only whether it is a genuine, live PatriotPay link (`link_check`). No sign-in; the
//! form is CSRF-checked like every other. Each check counts against the caller's address key, at
//! most `link_check::MAX_CHECKS_PER_ADDRESS` in `link_check::WINDOW_SECS`, then 429. The answer
//! comes back through the session as a catalog key only (post-redirect-get): what was pasted is
//! never stored, logged or audited (it may be a live link).

use super::error::{AppError, Result};
use super::extract::CsrfForm;
use super::member::audit_event;
use super::session::{Flash, Sess};
use super::{see_other, tr, AppState, RequestContext, Routes};
use crate::audit::Outcome;
use crate::link_check::{self, Verdict};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::CheckLinkForm;
use patriotpay_app::vm_messages::{CheckLinkVm, CheckResultVm};
use patriotpay_app::Url;

const GENUINE: &str = "check-link-genuine";

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::CheckLink, page)
        .form(Url::CheckLink, submit)
}

/// How a genuine link starts: this portal's address and `/p/`.
fn prefix(state: &AppState) -> String {
    format!(
        "{}{}",
        state.public_url.trim_end_matches('/'),
        Url::PayLink("").path()
    )
}

pub async fn page(State(state): State<AppState>, session: Sess) -> Result<Response> {
    let result = match session.take_flash().await? {
        Some(f) if f.key == GENUINE => Some(CheckResultVm::Genuine(tr().t(&f.key))),
        Some(f) if f.key.starts_with("check-link-") => Some(CheckResultVm::Other(tr().t(&f.key))),
        _ => None,
    };
    let vm = CheckLinkVm {
        csrf: session.csrf_token().await?,
        result,
        prefix: prefix(&state),
    };
    Ok(Html(patriotpay_app::check_link::check_link(
        super::page_meta(),
        vm,
    ))
    .into_response())
}

pub async fn submit(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(form): CsrfForm<CheckLinkForm>,
) -> Result<Response> {
    let address = crate::limits::address_key(&ctx.address);
    // Every check counts, whatever it finds; over the limit nothing is checked or recorded.
    if !link_check::claim(&state.db, &address, ctx.now).await? {
        return Err(AppError::TooManyRequests {
            retry_after_secs: link_check::WINDOW_SECS.unsigned_abs(),
        });
    }
    let verdict = link_check::check(&state.db, &form.link, &state.public_url, ctx.now).await?;
    // The event names the link's id when it was genuine (an investigation may want to know a
    // link was checked), and never the token or what was pasted.
    let (tenant, resource, outcome) = match &verdict {
        Verdict::Genuine(link) => (
            Some(&link.tenant_id),
            Some(link.id.as_str()),
            Outcome::Success,
        ),
        _ => (None, None, Outcome::Failure),
    };
    audit_event(
        &state,
        &ctx,
        "visitor".into(),
        (tenant, None),
        "paylink.checked",
        resource,
        outcome,
    )
    .await?;
    let key = match verdict {
        Verdict::Genuine(_) => GENUINE,
        Verdict::NotFound => "check-link-not-found",
        Verdict::Partial => "check-link-partial",
        Verdict::OtherSite => "check-link-other-site",
        Verdict::Empty => "check-link-empty",
    };
    session.set_flash(Flash::key(key)).await?;
    Ok(see_other(Url::CheckLink))
}
