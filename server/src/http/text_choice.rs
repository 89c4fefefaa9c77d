//! A pay-link visitor's choice about billing texts (issue 13: consent from the patient's own web
//! form): the summary shows whether the patient's number gets texts (its last four digits, read
//! under the summary's permit) with the consent wording, and the form turns texts on or off, a
//! `ChooseTexts` permit (its audit event names the choice) and an entry in the consent ledger.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, LinkVisitor};
use super::session::{Flash, Sess};
use super::{see_other, tr, AppState, RequestContext, Routes};
use crate::access::{Action, Permit};
use crate::messages::choice;
use axum::extract::State;
use axum::response::Response;
use patriotpay_app::forms::TextChoiceForm;
use patriotpay_app::vm::TextChoiceVm;
use patriotpay_app::Url;

const NOW_ON: &str = "texts-choice-now-on";
const NOW_OFF: &str = "texts-choice-now-off";

pub fn router(state: &AppState) -> Routes {
    Routes::new(state).phi_form(Url::TextChoice, choose)
}

/// The summary's "Text messages" section, under its permit: `None` without a number that can
/// take texts, and for staff viewing as the patient (the choice is the patient's alone). Takes
/// only this form's notice from the session; any other is the pay form's.
pub(super) async fn for_summary(
    state: &AppState,
    ctx: &RequestContext,
    session: &Sess,
    permit: &Permit,
) -> Result<Option<TextChoiceVm>> {
    let notice = session
        .take_flash_if(|f| f.key == NOW_ON || f.key == NOW_OFF)
        .await?
        .map(|f| tr().t(&f.key));
    if ctx.viewing_as.is_some() {
        return Ok(None);
    }
    let Some((number, on)) = choice::standing(&state.db, &state.crypto, permit).await? else {
        return Ok(None);
    };
    Ok(Some(TextChoiceVm {
        csrf: session.csrf_token().await?,
        last_digits: number.last_digits,
        on,
        notice,
    }))
}

/// Turns billing texts to the patient's number on or off, then back to the summary.
pub async fn choose(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    CsrfForm(form): CsrfForm<TextChoiceForm>,
) -> Result<Response> {
    let (on, event, notice) = match form.choice.as_str() {
        "on" => (true, "texts.choice.on", NOW_ON),
        "off" => (false, "texts.choice.off", NOW_OFF),
        _ => return Err(AppError::BadRequest),
    };
    let permit = super::patient::permit(
        &state,
        &ctx,
        &link,
        Action::ChooseTexts,
        event,
        link.patient_id.as_str(),
    )
    .await?;
    if choice::choose(&state.db, &state.crypto, &permit, on, ctx.now)
        .await?
        .is_none()
    {
        // No number that can take texts: nothing to choose.
        return Err(AppError::NotFound);
    }
    session.set_flash(Flash::key(notice)).await?;
    Ok(see_other(Url::Summary))
}
