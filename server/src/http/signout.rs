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
    let data = session.data().await?;
    let member = data.member;
    // Removes the server-side record, not just the cookie.
    session.end().await?;
    if let Some(m) = member {
        state
            .audit
            .record(crate::audit::Event {
                actor: &ctx.actor(format!("user:{}", m.user_id)),
                tenant: None,
                patient: None,
                action: "member.signout",
                resource: Some(&m.user_id),
                outcome: crate::audit::Outcome::Success,
            })
            .await?;
    }
    // The record is gone, the language with it: the next page takes it back from the switch.
    Ok(
        match data.lang.as_deref().and_then(patriotpay_app::Lang::parse) {
            // English is the default: only another language needs carrying over.
            Some(lang) if lang != patriotpay_app::Lang::default() => {
                super::see_other_query(Url::SignedOut, "lang", lang.code())
            }
            _ => see_other(Url::SignedOut),
        },
    )
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
