//! Off-session charges of saved cards at the sandbox (issue 10's payment plans), on both
//! databases: a card saved through the setup page remembers how its test number charges later
//! (succeeds, needs authentication, declined, insufficient funds) without keeping the number;
//! one idempotency key charges once, also when calls race; only the customer's attached card can
//! be charged; each charge sends its Stripe-shaped event and the portal books one that names our
//! checkout; payments (hosted ones with their checkout ref), refunds and disputes are listed by
//! the window they were created in.

use crate::common::*;
use patriotpay::ids::{CheckoutId, RefundId};
use patriotpay::money::Money;
use patriotpay::payments::sandbox::Sandbox;
use patriotpay::payments::{
    ChargeOutcome, DeclineReason, OffSessionCharge, PaymentProcessor, PaymentStatus,
    ProcessorError, RefundReason, RefundRequest,
};
use std::sync::Arc;

fn sandbox(app: &TestApp) -> Arc<Sandbox> {
    app.running.as_ref().expect("running").sandbox.clone()
}

/// A member's saved card, as the processor knows it.
pub(crate) struct SavedCard {
    pub user: String,
    pub customer: String,
    pub card: String,
}

/// Saves `number` for the signed-in member `b` through the portal and the sandbox's setup page;
/// the new card's id.
pub(crate) async fn save_card(app: &TestApp, b: &Browser, number: &str) -> String {
    let csrf = b.csrf("/account/cards").await;
    let r = b.post("/account/cards/save", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), SEE_OTHER, "save a card");
    let page = location(&r);
    assert!(page.starts_with(&app.sandbox_url), "{page}");
    let html = b.client.get(&page).send().await.expect("page");
    let html = text(&html.text().await.expect("body"));
    assert!(
        html.contains(&t("sandbox-save-hint")),
        "the setup page lists the saved-card test numbers: {html}"
    );
    let r = b.card(&page, number).await;
    assert_eq!(r.status(), SEE_OTHER, "{number} saved");
    let r = b.get(&location(&r)).await;
    assert_eq!(location(&r), "/account/cards");
    sqlx::query_scalar("SELECT id FROM sandbox_payment_methods ORDER BY seq DESC LIMIT 1")
        .fetch_one(app.db().pool())
        .await
        .expect("saved card")
}

/// Demo patient `n`'s member account (`email`) with one saved card, `number`.
pub(crate) async fn member_with_card(
    app: &TestApp,
    n: usize,
    email: &str,
    number: &str,
) -> (Browser, SavedCard) {
    let (b, user) = app.signed_in_member(n, email).await;
    let card = save_card(app, &b, number).await;
    let customer: String =
        sqlx::query_scalar("SELECT customer_id FROM member_customers WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("customer");
    let saved = SavedCard {
        user: user.as_str().to_owned(),
        customer,
        card,
    };
    (b, saved)
}

/// One of our checkouts for an off-session charge of `cents` on demo patient `n`'s statement,
/// recorded before the processor is called as a payment plan records one.
pub(crate) async fn charge_checkout(app: &TestApp, user: &str, n: usize, cents: i64) -> CheckoutId {
    let id = CheckoutId::generate();
    let statement = app.statement_of(n).await;
    let now = app.state().clock.now();
    sqlx::query(
        "INSERT INTO checkouts (id, tenant_id, statement_id, user_id, amount_cents,
             idempotency_key, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'creating', $7)",
    )
    .bind(id.as_str())
    .bind(app.tenant.as_str())
    .bind(statement.as_str())
    .bind(user)
    .bind(cents)
    .bind(format!("charge-{id}"))
    .bind(now)
    .execute(app.db().pool())
    .await
    .expect("checkout");
    sqlx::query(
        "INSERT INTO checkout_items (checkout_id, statement_id, amount_cents, live)
         VALUES ($1, $2, $3, 1)",
    )
    .bind(id.as_str())
    .bind(statement.as_str())
    .bind(cents)
    .execute(app.db().pool())
    .await
    .expect("item");
    id
}

pub(crate) fn charge(saved: &SavedCard, cents: i64, checkout: &CheckoutId) -> OffSessionCharge {
    OffSessionCharge {
        customer: saved.customer.clone(),
        card: saved.card.clone(),
        amount: Money::from_cents(cents),
        checkout_ref: checkout.clone(),
        statement_ref: "stm_test".into(),
    }
}

/// The payment an outcome names.
fn payment_of(outcome: &ChargeOutcome) -> String {
    match outcome {
        ChargeOutcome::Paid(p) => p.id.clone(),
        ChargeOutcome::AuthenticationRequired { payment }
        | ChargeOutcome::Declined { payment, .. } => payment.clone().expect("a payment"),
    }
}

/// The types of the outbox events about payment `id`.
async fn events_about(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT type FROM sandbox_events WHERE payload LIKE $1 ORDER BY type")
        .bind(format!("%\"id\":\"{id}\"%"))
        .fetch_all(app.db().pool())
        .await
        .expect("events")
}

async fn saved_cards_charge_as_their_test_numbers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (b, visa) =
        member_with_card(&app, 1, "charges.cards@example.org", "4242424242424242").await;
    let mut cards = vec![visa.card.clone()];
    for number in ["4000002760003184", "4000000000000341", "4000000000009995"] {
        cards.push(save_card(&app, &b, number).await);
    }
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT last4, behaviour FROM sandbox_payment_methods ORDER BY seq")
            .fetch_all(app.db().pool())
            .await
            .expect("cards");
    let kept: Vec<(&str, &str)> = kept.iter().map(|(l, b)| (l.as_str(), b.as_str())).collect();
    assert_eq!(
        kept,
        [
            ("4242", "succeeds"),
            ("3184", "authentication_required"),
            ("0341", "declined"),
            ("9995", "insufficient_funds"),
        ]
    );
    let sb = sandbox(&app);
    let ours = CheckoutId::generate();
    let with = |card: &str| OffSessionCharge {
        card: card.to_owned(),
        ..charge(&visa, 700, &ours)
    };

    let paid = sb
        .charge_saved_card(&with(&cards[0]), "k-visa")
        .await
        .expect("charge");
    let ChargeOutcome::Paid(p) = &paid else {
        panic!("4242 pays: {paid:?}")
    };
    assert!(p.succeeded());
    assert_eq!(p.amount_received, Money::from_cents(700));
    assert_eq!(
        (p.card_brand.as_str(), p.card_last4.as_str()),
        ("Visa", "4242")
    );
    assert_eq!(p.checkout_ref.as_deref(), Some(ours.as_str()));
    let again = sb.retrieve_payment(&p.id).await.expect("payment");
    assert_eq!(again.checkout_ref.as_deref(), Some(ours.as_str()));
    assert!(again.succeeded());
    // The same key: the same charge, never a second; with other parameters, refused.
    let repeat = sb
        .charge_saved_card(&with(&cards[0]), "k-visa")
        .await
        .expect("again");
    assert_eq!(payment_of(&repeat), p.id);
    let mut other = with(&cards[0]);
    other.amount = Money::from_cents(701);
    assert!(matches!(
        sb.charge_saved_card(&other, "k-visa").await,
        Err(ProcessorError::Rejected(_))
    ));
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_payments").await, 1);

    let auth = sb
        .charge_saved_card(&with(&cards[1]), "k-3ds")
        .await
        .expect("charge");
    assert!(
        matches!(
            auth,
            ChargeOutcome::AuthenticationRequired { payment: Some(_) }
        ),
        "{auth:?}"
    );
    let waiting = sb
        .retrieve_payment(&payment_of(&auth))
        .await
        .expect("payment");
    assert_eq!(waiting.status, PaymentStatus::Incomplete);
    assert_eq!(
        (waiting.amount_received, waiting.last_error),
        (Money::ZERO, None)
    );

    for (card, key, reason) in [
        (&cards[2], "k-0341", DeclineReason::Generic),
        (&cards[3], "k-9995", DeclineReason::InsufficientFunds),
    ] {
        let declined = sb
            .charge_saved_card(&with(card), key)
            .await
            .expect("charge");
        let ChargeOutcome::Declined {
            payment: Some(id),
            reason: why,
        } = &declined
        else {
            panic!("{key} is declined: {declined:?}")
        };
        assert_eq!(*why, reason);
        let failed = sb.retrieve_payment(id).await.expect("payment");
        assert_eq!(
            (failed.status, failed.last_error),
            (PaymentStatus::Incomplete, Some(reason))
        );
        assert_eq!(
            events_about(&app, id).await,
            ["payment_intent.payment_failed"]
        );
    }
    assert_eq!(
        events_about(&app, &p.id).await,
        ["payment_intent.succeeded"]
    );
    assert_eq!(
        events_about(&app, &payment_of(&auth)).await,
        ["payment_intent.requires_action"]
    );
    let payload: String = sqlx::query_scalar(
        "SELECT payload FROM sandbox_events WHERE type = 'payment_intent.requires_action'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("event");
    assert!(
        payload.contains("\"status\":\"requires_action\""),
        "{payload}"
    );
    assert!(
        payload.contains(&format!("\"checkout\":\"{ours}\"")),
        "{payload}"
    );
    // Delivered to the portal, which books none of them: the checkout they name is not ours.
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sandbox_events WHERE delivered_at IS NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    // Nothing of a card but its brand, last four, expiry and behaviour is kept.
    let dump = dump_database(&app).await;
    for number in [
        "4242424242424242",
        "4000002760003184",
        "4000000000000341",
        "4000000000009995",
    ] {
        assert!(
            !dump.windows(number.len()).any(|w| w == number.as_bytes()),
            "{number} is not stored"
        );
    }

    // The window listing: all four, oldest first, none outside it.
    let now = patriotpay::clock::now_unix();
    let listed = sb.list_payments(now - 3600, now + 1).await.expect("list");
    assert_eq!(listed.len(), 4);
    assert!(listed.windows(2).all(|w| w[0].created <= w[1].created));
    assert!(listed
        .iter()
        .all(|l| l.checkout_ref.as_deref() == Some(ours.as_str())));
    let first = listed[0].created;
    assert!(sb
        .list_payments(now - 3600, first)
        .await
        .expect("list")
        .is_empty());
    assert!(sb
        .list_payments(now + 1, now + 3600)
        .await
        .expect("list")
        .is_empty());
    app.finish().await;
}

async fn only_the_customers_attached_card_is_charged(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_a, mine) =
        member_with_card(&app, 1, "charges.mine@example.org", "4242424242424242").await;
    let (_b, theirs) =
        member_with_card(&app, 2, "charges.theirs@example.org", "4242424242424242").await;
    let sb = sandbox(&app);
    let ours = CheckoutId::generate();
    let stolen = OffSessionCharge {
        card: theirs.card.clone(),
        ..charge(&mine, 500, &ours)
    };
    assert!(matches!(
        sb.charge_saved_card(&stolen, "k-stolen").await,
        Err(ProcessorError::NotFound)
    ));
    let first = sb
        .charge_saved_card(&charge(&mine, 500, &ours), "k-before")
        .await
        .expect("charge");
    assert!(matches!(first, ChargeOutcome::Paid(_)), "{first:?}");
    sb.remove_card(&mine.customer, &mine.card)
        .await
        .expect("removed");
    assert!(matches!(
        sb.charge_saved_card(&charge(&mine, 500, &ours), "k-after")
            .await,
        Err(ProcessorError::NotFound)
    ));
    // A key used before the card was removed still answers with its charge.
    let repeat = sb
        .charge_saved_card(&charge(&mine, 500, &ours), "k-before")
        .await
        .expect("again");
    assert_eq!(payment_of(&repeat), payment_of(&first));
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_payments").await, 1);
    app.finish().await;
}

/// Eight calls with one key at once, a barrier releasing them together: one payment, one event,
/// every caller told of it.
async fn one_key_charges_once_when_calls_race(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, saved) =
        member_with_card(&app, 1, "charges.race@example.org", "4242424242424242").await;
    let sb = sandbox(&app);
    let req = charge(&saved, 900, &CheckoutId::generate());
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = vec![];
    for _ in 0..8 {
        let (sb, req, barrier) = (sb.clone(), req.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            sb.charge_saved_card(&req, "k-race").await
        }));
    }
    let mut ids = vec![];
    for t in tasks {
        ids.push(payment_of(&t.await.expect("task").expect("charged")));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM sandbox_payments").await, 1);
    assert_eq!(
        events_about(&app, &ids[0]).await,
        ["payment_intent.succeeded"]
    );
    app.finish().await;
}

/// A charge for one of our checkouts: the portal books it from the sandbox's event, once.
async fn the_portal_books_a_charge_from_its_event(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_b, saved) =
        member_with_card(&app, 1, "charges.booked@example.org", "4242424242424242").await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let checkout = charge_checkout(&app, &saved.user, 1, 1200).await;
    let paid = sandbox(&app)
        .charge_saved_card(&charge(&saved, 1200, &checkout), "k-booked")
        .await
        .expect("charge");
    app.run_jobs().await;
    let booked: String =
        sqlx::query_scalar("SELECT processor_payment_id FROM payments WHERE checkout_id = $1")
            .bind(checkout.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("booked");
    assert_eq!(booked, payment_of(&paid));
    assert_eq!(balance(&app, &statement).await, before - 1200);
    app.finish().await;
}

/// A hosted checkout's payment carries our checkout id (its client_reference_id); refunds and
/// disputes are listed by when they were made; a dispute closes once.
async fn hosted_payments_refunds_and_disputes_by_window(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = app.verified_visitor(1).await;
    let checkout = location(&b.pay("5.00").await);
    assert_eq!(
        b.card(&checkout, "4242 4242 4242 4242").await.status(),
        SEE_OTHER
    );
    app.run_jobs().await;
    let (ours, pi): (String, String) =
        sqlx::query_as("SELECT checkout_id, processor_payment_id FROM payments")
            .fetch_one(app.db().pool())
            .await
            .expect("booked");
    let sb = sandbox(&app);
    let p = sb.retrieve_payment(&pi).await.expect("payment");
    assert_eq!(p.checkout_ref.as_deref(), Some(ours.as_str()));

    let refund = sb
        .create_refund(
            &RefundRequest {
                payment: pi.clone(),
                amount: Money::from_cents(200),
                reason: RefundReason::RequestedByCustomer,
                refund_ref: RefundId::generate(),
            },
            "k-refund",
        )
        .await
        .expect("refund");
    let dispute = sb.open_dispute(&pi).await.expect("dispute");
    let now = patriotpay::clock::now_unix();
    let refunds = sb
        .list_refunds_between(now - 3600, now + 1)
        .await
        .expect("refunds");
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (refunds[0].id.as_str(), refunds[0].payment.as_str()),
        (refund.id.as_str(), pi.as_str())
    );
    let disputes = sb
        .list_disputes(now - 3600, now + 1)
        .await
        .expect("disputes");
    assert_eq!(disputes.len(), 1);
    assert_eq!(
        (disputes[0].id.as_str(), disputes[0].payment.as_str()),
        (dispute.as_str(), pi.as_str())
    );
    assert_eq!(disputes[0].status, "needs_response");
    assert!(sb
        .list_refunds_between(now + 1, now + 3600)
        .await
        .expect("refunds")
        .is_empty());
    assert!(sb
        .list_disputes(now - 3600, disputes[0].created)
        .await
        .expect("disputes")
        .is_empty());

    assert!(sb.close_dispute(&dispute, false).await);
    assert!(!sb.close_dispute(&dispute, true).await, "closed once");
    assert_eq!(
        sb.retrieve_dispute(&dispute).await.expect("dispute").status,
        "lost"
    );
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM disputes WHERE status = 'lost'")
            .await,
        1,
        "the portal followed the closing event"
    );
    app.finish().await;
}

both_backends!(
    saved_cards_charge_as_their_test_numbers,
    only_the_customers_attached_card_is_charged,
    one_key_charges_once_when_calls_race,
    the_portal_books_a_charge_from_its_event,
    hosted_payments_refunds_and_disputes_by_window,
);
