//! "This wasn't me" (issue 13): the link at the end of every owner notice. Its page asks first
//! (a GET changes nothing: mail scanners open links); the form signs the account out everywhere
//! (the portal's sessions and the identity provider's tokens), alerts, and audits.

use super::error::Result;
use super::extract::CsrfForm;
use super::member::{actor_id, audit_event};
use super::session::Sess;
use super::{page_meta, AppState, RequestContext, Routes};
use crate::accounts;
use crate::audit::Outcome;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::account::{not_me, NotMeVm};
use patriotpay_app::forms::NotMeForm;
use patriotpay_app::Url;

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::AccountNotMeLink(patriotpay_app::urls::ANY), ask)
        .form(Url::AccountNotMe, act)
}

/// `GET /account/not-me/{token}`: the question, when the link is live.
pub async fn ask(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Path(token): Path<String>,
) -> Result<Response> {
    let vm = if crate::links::token_shape_ok(&token)
        && accounts::alarm_is_live(&state.db, &token, ctx.now).await?
    {
        NotMeVm::Ask {
            csrf: session.csrf_token().await?,
            token,
        }
    } else {
        NotMeVm::Gone
    };
    Ok(Html(not_me(page_meta(), vm)).into_response())
}

/// `POST /account/not-me`: the account signed out everywhere, the practices alerted.
pub async fn act(
    State(state): State<AppState>,
    ctx: RequestContext,
    CsrfForm(form): CsrfForm<NotMeForm>,
) -> Result<Response> {
    let raised = if crate::links::token_shape_ok(&form.token) {
        accounts::raise_alarm(&state.db, &form.token, ctx.now).await?
    } else {
        None
    };
    let Some((user, practices)) = raised else {
        return Ok(Html(not_me(page_meta(), NotMeVm::Gone)).into_response());
    };
    if let Some(account) = accounts::load(&state.db, &user, ctx.now).await? {
        let email = account.email(&state.crypto).await?;
        state.identity.sign_out_everywhere(email.expose()).await?;
    }
    state
        .alerts
        .raise(
            &state.db,
            None,
            "account.not_me",
            &format!(
                "account {user} reported a change it did not make (signed out everywhere); \
                 practices: {}",
                practices.join(", ")
            ),
            ctx.now,
        )
        .await?;
    audit_event(
        &state,
        &ctx,
        actor_id(&user),
        (None, None),
        "account.not_me",
        Some(user.as_str()),
        Outcome::Success,
    )
    .await?;
    Ok(Html(not_me(page_meta(), NotMeVm::Done)).into_response())
}
