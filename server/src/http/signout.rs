//! Ending a visit: signing out (a pay-link visitor or a member), and the pages that say a
//! session ended.

use super::error::Result;
use super::extract::CsrfForm;
use super::session::Sess;
use super::{see_other, AppState, RequestContext};
use axum::extract::State;
use axum::response::{Html, Response};
use patriotpay_app::forms::Empty;
use patriotpay_app::pages;
use patriotpay_app::urls::Url;
use patriotpay_app::vm::NoticeKind;

/// Signs a pay-link visitor or a member out; a member's sign-out is on the audit trail like
/// their sign-in.
pub async fn signout(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    let member = session.data().await?.member;
    // Removes the server-side record, not just the cookie.
    session.end().await?;
    if let Some(m) = member {
        crate::audit::record(
            state.db.pool(),
            crate::audit::Event {
                actor: &ctx.actor(format!("user:{}", m.user_id)),
                tenant: None,
                patient: None,
                action: "member.signout",
                resource: Some(&m.user_id),
                outcome: crate::audit::Outcome::Success,
            },
        )
        .await?;
    }
    Ok(see_other(Url::SignedOut))
}

pub async fn signed_out() -> Html<String> {
    Html(pages::notice(super::page_meta(), NoticeKind::SignedOut))
}

pub async fn expired() -> Html<String> {
    Html(pages::notice(
        super::page_meta(),
        NoticeKind::SessionExpired,
    ))
}
