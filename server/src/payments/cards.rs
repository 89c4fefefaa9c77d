//! A member's saved cards: their one processor customer (made on first use, carrying only the
//! user id), starting a setup-mode checkout, recognising its completion once, listing the
//! cards and removing one of them. Card details live at the processor only; the portal keeps
//! the customer id and its own setup attempts.

use super::{CheckoutStatus, SetupRequest};
use super::{PaymentError, PaymentProcessor, ProcessorCheckout, ProcessorError, SavedCard};
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::{CardSetupId, UserId};

/// The processor customer already made for `user`, if any.
pub async fn customer_of(db: &Db, user: &UserId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT customer_id FROM member_customers WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_optional(db.pool())
        .await
}

/// The member's processor customer, made on first use. The idempotency key is the member's, so
/// two first uses at once get one customer from the processor and store it once.
pub async fn customer_for(
    db: &Db,
    processor: &dyn PaymentProcessor,
    user: &UserId,
    now: i64,
) -> Result<String, PaymentError> {
    if let Some(c) = customer_of(db, user).await? {
        return Ok(c);
    }
    let made = processor
        .create_customer(user.as_str(), &format!("customer-{user}"))
        .await?;
    sqlx::query(
        "INSERT INTO member_customers (user_id, customer_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user.as_str())
    .bind(&made)
    .bind(now)
    .execute(db.pool())
    .await?;
    customer_of(db, user)
        .await?
        .ok_or(PaymentError::Invalid("member customer not stored"))
}

/// Where the processor sends the member back: `(success_url, cancel_url)` for one attempt.
pub type SetupUrls<'a> = &'a (dyn Fn(&CardSetupId) -> (String, String) + Send + Sync);

/// Starts saving a card: the attempt is recorded first (its id makes the idempotency key), then
/// the processor's setup page is made; its URL is returned. Audited `card.save.start`.
pub async fn start_setup(
    db: &Db,
    processor: &dyn PaymentProcessor,
    user: &UserId,
    urls: SetupUrls<'_>,
    actor: &Actor,
    now: i64,
) -> Result<String, PaymentError> {
    let customer = customer_for(db, processor, user, now).await?;
    let id = CardSetupId::generate();
    sqlx::query(
        "INSERT INTO card_setups (id, user_id, status, created_at) VALUES ($1, $2, 'creating', $3)",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(now)
    .execute(db.pool())
    .await?;
    let (success_url, cancel_url) = urls(&id);
    let req = SetupRequest {
        customer,
        setup_ref: id.as_str().to_owned(),
        created_at: now,
        success_url,
        cancel_url,
    };
    let made: ProcessorCheckout = processor
        .create_setup_checkout(&req, &format!("setup-{id}"))
        .await?;
    sqlx::query(
        "UPDATE card_setups SET processor_session_id = $1, status = 'open'
         WHERE id = $2 AND status = 'creating'",
    )
    .bind(&made.id)
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    audit::record(
        db.pool(),
        audit::Event {
            actor,
            tenant: None,
            patient: None,
            action: "card.save.start",
            resource: Some(id.as_str()),
            outcome: Outcome::Success,
        },
    )
    .await?;
    Ok(made.url)
}

/// What the return from the processor's setup page came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupReturn {
    /// Not this member's attempt, or not the session it made: shown as not found.
    Unknown,
    /// The processor says the card was saved (`card.saved` audited on the first return only).
    Saved,
    /// The setup page was left without saving a card.
    NotSaved,
}

/// The member is back from the setup page of attempt `raw` with `session_id`: asks the
/// processor whether it completed, and on the first return that finds it so, marks the attempt
/// saved and audits `card.saved`.
pub async fn finish_setup(
    db: &Db,
    processor: &dyn PaymentProcessor,
    user: &UserId,
    raw: &str,
    session_id: Option<&str>,
    actor: &Actor,
) -> Result<SetupReturn, PaymentError> {
    let Some(id) = CardSetupId::parse(raw) else {
        return Ok(SetupReturn::Unknown);
    };
    let ours: Option<Option<String>> = sqlx::query_scalar(
        "SELECT processor_session_id FROM card_setups WHERE id = $1 AND user_id = $2",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(Some(session)) = ours else {
        return Ok(SetupReturn::Unknown);
    };
    // The query's session id is the processor's word only if it is the one we stored.
    if session_id.is_some_and(|s| s != session) {
        return Ok(SetupReturn::Unknown);
    }
    let checkout = match processor.retrieve_checkout(&session).await {
        Ok(c) => c,
        Err(ProcessorError::NotFound) => return Ok(SetupReturn::NotSaved),
        Err(e) => return Err(e.into()),
    };
    if checkout.status != CheckoutStatus::Complete
        || checkout.client_reference_id.as_deref() != Some(id.as_str())
    {
        return Ok(SetupReturn::NotSaved);
    }
    let first =
        sqlx::query("UPDATE card_setups SET status = 'saved' WHERE id = $1 AND status = 'open'")
            .bind(id.as_str())
            .execute(db.pool())
            .await?
            .rows_affected()
            == 1;
    if first {
        audit::record(
            db.pool(),
            audit::Event {
                actor,
                tenant: None,
                patient: None,
                action: "card.saved",
                resource: Some(id.as_str()),
                outcome: Outcome::Success,
            },
        )
        .await?;
    }
    Ok(SetupReturn::Saved)
}

/// The member's saved cards, newest first; none before a customer was made (listing makes none).
pub async fn list(
    db: &Db,
    processor: &dyn PaymentProcessor,
    user: &UserId,
) -> Result<Vec<SavedCard>, PaymentError> {
    let Some(customer) = customer_of(db, user).await? else {
        return Ok(vec![]);
    };
    match processor.list_cards(&customer).await {
        Ok(cards) => Ok(cards),
        Err(ProcessorError::NotFound) => Ok(vec![]),
        Err(e) => Err(e.into()),
    }
}

/// Whether a card was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    Removed,
    /// Not among the cards the processor lists for this member's customer: nothing was asked
    /// of the processor (audited as denied).
    NotTheirs,
}

/// Removes `card` if it is one of the member's own cards as the processor lists them. Audited
/// `card.remove`, allowed or denied.
pub async fn remove(
    db: &Db,
    processor: &dyn PaymentProcessor,
    user: &UserId,
    card: &str,
    actor: &Actor,
) -> Result<Removed, PaymentError> {
    let customer = customer_of(db, user).await?;
    let theirs = match &customer {
        Some(_) => list(db, processor, user)
            .await?
            .iter()
            .any(|k| k.id == card),
        None => false,
    };
    let removed = match (theirs, customer) {
        (true, Some(c)) => match processor.remove_card(&c, card).await {
            Ok(()) => Removed::Removed,
            Err(ProcessorError::NotFound) => Removed::NotTheirs,
            Err(e) => return Err(e.into()),
        },
        _ => Removed::NotTheirs,
    };
    // The card id is the processor's opaque id; anything else typed into the form is not
    // copied into the audit trail.
    let opaque = card.len() <= 64 && card.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let shown = if opaque { card } else { "invalid" };
    audit::record(
        db.pool(),
        audit::Event {
            actor,
            tenant: None,
            patient: None,
            action: "card.remove",
            resource: Some(shown),
            outcome: if removed == Removed::Removed {
                Outcome::Success
            } else {
                Outcome::Denied
            },
        },
    )
    .await?;
    Ok(removed)
}
