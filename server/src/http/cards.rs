//! A member's saved cards: the page listing them, saving one through the processor's setup
//! page and coming back from it, and removing one. Members only (a pay-link visitor is sent to
//! sign in); nothing here reads PHI.

use super::error::{AppError, Result};
use super::extract::{CsrfForm, Member};
use super::member::{actor_id, meta};
use super::session::Sess;
use super::{see_other, to_processor_checkout, tr, AppState, RequestContext, Routes};
use crate::payments::cards::{self, Removed, SetupReturn};
use crate::payments::PaymentError;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{Empty, RemoveCardForm, ReturnQuery};
use patriotpay_app::urls::{Url, ANY};
use patriotpay_app::vm_cards::{expiry, CardsVm, SavedCardVm};

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .page(Url::AccountCards, page)
        .form(Url::AccountCardSave, save)
        .form(Url::AccountCardRemove, remove)
        .page(Url::AccountCardsReturn(ANY), back)
}

/// A processor that cannot be reached (or refuses) is told to the member on the page; anything
/// else is ours.
async fn processor_trouble(session: &Sess, e: PaymentError) -> Result<Response> {
    match e {
        PaymentError::Processor(e) => {
            tracing::warn!(error = %e, "saved cards: processor");
            session
                .set_flash(failure("account-cards-unavailable"))
                .await?;
            Ok(see_other(Url::AccountCards))
        }
        PaymentError::Db(d) => Err(d.into()),
        e => Err(AppError::Internal(e.into())),
    }
}

/// Flash marker for a refusal (shown as a failure, not a notice).
const FAILURE_FIELD: &str = "cards-failure";

fn failure(key: &str) -> super::session::Flash {
    super::session::Flash::on(FAILURE_FIELD, key)
}

pub async fn page(
    State(state): State<AppState>,
    session: Sess,
    Member(who): Member,
) -> Result<Response> {
    let mut vm = CardsVm {
        csrf: session.csrf_token().await?,
        ..Default::default()
    };
    if let Some(f) = session.take_flash().await? {
        if f.field.as_deref() == Some(FAILURE_FIELD) {
            vm.failure = Some(tr().t(&f.key));
        } else {
            vm.notice = Some(tr().t(&f.key));
        }
    }
    match cards::list(&state.db, state.processor.as_ref(), &who.id).await {
        Ok(list) => {
            vm.cards = list
                .into_iter()
                .map(|c| SavedCardVm {
                    expiry: expiry(c.exp_month, c.exp_year),
                    id: c.id,
                    brand: c.brand,
                    last4: c.last4,
                })
                .collect();
        }
        Err(PaymentError::Processor(e)) => {
            tracing::warn!(error = %e, "saved cards: processor");
            vm.failure = Some(tr().t("account-cards-unavailable"));
        }
        Err(PaymentError::Db(d)) => return Err(d.into()),
        Err(e) => return Err(AppError::Internal(e.into())),
    }
    Ok(Html(patriotpay_app::account::cards(meta(&session).await?, vm)).into_response())
}

/// "Save a card": the member's customer (made on first use), a setup checkout, and off to the
/// processor's page.
pub async fn save(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response> {
    let base = state.public_url.clone();
    let urls = move |id: &crate::ids::CardSetupId| {
        (
            format!(
                "{base}{}?{}={{CHECKOUT_SESSION_ID}}",
                Url::AccountCardsReturn(id.as_str()).path(),
                ReturnQuery::SESSION_ID
            ),
            format!("{base}{}", Url::AccountCards.path()),
        )
    };
    let actor = ctx.actor(actor_id(&who.id));
    match cards::start_setup(
        &state.db,
        state.processor.as_ref(),
        &who.id,
        &urls,
        &actor,
        ctx.now,
    )
    .await
    {
        Ok(url) => Ok(to_processor_checkout(&url)),
        Err(e) => processor_trouble(&session, e).await,
    }
}

/// Back from the processor's setup page: the list, with whether the card was saved.
pub async fn back(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Result<Response> {
    let actor = ctx.actor(actor_id(&who.id));
    let session_id = (!q.session_id.is_empty()).then_some(q.session_id.as_str());
    let done = cards::finish_setup(
        &state.db,
        state.processor.as_ref(),
        &who.id,
        &raw,
        session_id,
        &actor,
    )
    .await;
    let key = match done {
        Ok(SetupReturn::Saved) => "account-card-saved",
        Ok(SetupReturn::NotSaved) => "account-card-not-saved",
        Ok(SetupReturn::Unknown) => {
            return Err(super::member::unseen(
                &state,
                &ctx,
                actor_id(&who.id),
                "card.setup.not_found",
                "card-setup",
            )
            .await)
        }
        Err(e) => return processor_trouble(&session, e).await,
    };
    session.notice(key).await?;
    Ok(see_other(Url::AccountCards))
}

/// Removes one of the member's cards; a card that is not theirs is refused and nothing changes.
pub async fn remove(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    CsrfForm(form): CsrfForm<RemoveCardForm>,
) -> Result<Response> {
    let actor = ctx.actor(actor_id(&who.id));
    match cards::remove(
        &state.db,
        state.processor.as_ref(),
        &who.id,
        &form.card,
        &actor,
    )
    .await
    {
        Ok(Removed::Removed) => session.notice("account-card-removed").await?,
        Ok(Removed::NotTheirs) => session.set_flash(failure("account-card-not-yours")).await?,
        Err(e) => return processor_trouble(&session, e).await,
    }
    Ok(see_other(Url::AccountCards))
}
