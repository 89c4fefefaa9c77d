//! Links opened in a browser that is signed in (pay link, guarantor invitation, staff set-up):
//! a plain GET never ends or replaces a signed-in session; a page asks, and its POST does.

use super::error::Result;
use super::session::Sess;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::pages;
use patriotpay_app::urls::Url;
use patriotpay_app::vm::SwitchSessionVm;

/// `Some(page)` asking first when this session is signed in (staff, half-way through a staff
/// sign-in, or a member); `None` when the link may take the session over at once.
/// `member_may_continue`: the link can be taken on by a signed-in member (an invitation).
pub async fn ask_before_replacing(
    session: &Sess,
    link: Url<'_>,
    member_may_continue: bool,
) -> Result<Option<Response>> {
    let d = session.data().await?;
    let staff = d.staff.is_some() || d.pending_sign_in.is_some();
    if !staff && d.member.is_none() {
        return Ok(None);
    }
    let vm = SwitchSessionVm {
        csrf: session.csrf_token().await?,
        open_path: link.path(),
        stay_path: if staff { Url::Staff } else { Url::Account }.path(),
        staff,
        can_continue: member_may_continue && !staff,
    };
    // 200: the page is the answer; nothing was changed.
    Ok(Some(
        (
            StatusCode::OK,
            Html(pages::switch_session(super::page_meta(), vm)),
        )
            .into_response(),
    ))
}
