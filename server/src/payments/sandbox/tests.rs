//! The sandbox's own tests against a migrated SQLite file: one submit completes a checkout
//! whatever the interleaving, a late decline changes nothing, bank debits settle once.

use super::*;
use crate::ids::{CheckoutId, RefundId};
use crate::payments::{RefundReason, RefundStatus, NEUTRAL_DESCRIPTION};

async fn sandbox() -> (tempfile::TempDir, Arc<Sandbox>) {
    let (dir, db) = crate::db::temp_sqlite().await;
    let sb = Sandbox::new(db, "http://sandbox.test".into(), "whsec_unit".into(), 120);
    (dir, sb)
}

/// A checkout at a fresh sandbox, as the portal starts one.
async fn open_checkout(sb: &Arc<Sandbox>, bank_debit: bool) -> String {
    let ours = CheckoutId::generate();
    let req = CheckoutRequest {
        amount: Money::from_cents(500),
        checkout_ref: ours.clone(),
        statement_ref: String::new(),
        description: NEUTRAL_DESCRIPTION,
        created_at: crate::clock::now_unix(),
        success_url: "http://portal.test/pay/return/x?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "http://portal.test/pay/cancelled/x".into(),
        bank_debit,
        merchant_name: "Riverside Family Medicine".into(),
    };
    let first = sb
        .create_checkout(&req, ours.as_str())
        .await
        .expect("checkout");
    let again = sb
        .create_checkout(&req, ours.as_str())
        .await
        .expect("again");
    assert_eq!(first.id, again.id, "one checkout per idempotency key");
    first.id
}

fn attempt(decline: Option<DeclineReason>) -> Attempt {
    Attempt {
        method: MethodKind::Card,
        brand: "Visa".into(),
        last4: if decline.is_some() { "0002" } else { "4242" }.into(),
        outcome: decline.map_or(Outcome::Paid, Outcome::Declined),
        now: 1_700_000_000,
    }
}

fn debit(fails: bool) -> Attempt {
    Attempt {
        method: MethodKind::UsBankAccount,
        brand: TEST_BANK.into(),
        last4: if fails { "1116" } else { "6789" }.into(),
        outcome: Outcome::Debit { fails },
        now: crate::clock::now_unix(),
    }
}

async fn event_types(sb: &Sandbox) -> Vec<String> {
    sqlx::query_scalar("SELECT type FROM sandbox_events ORDER BY type")
        .fetch_all(sb.db.pool())
        .await
        .expect("events")
}

/// The race from issue 9, made deterministic: a declined submit whose card was checked while
/// the checkout was still open reaches the store only after a good card completed it. It
/// must change nothing: not the checkout, not its payment.
#[tokio::test]
async fn a_decline_that_lands_after_completion_changes_nothing() {
    let (_dir, sb) = sandbox().await;
    let id = open_checkout(&sb, false).await;
    // An earlier decline, so the checkout already has its payment (the one a late decline
    // used to overwrite).
    assert!(matches!(
        sb.record_attempt(&id, attempt(Some(DeclineReason::Generic)))
            .await,
        Ok(Recorded::Declined(_))
    ));
    assert!(matches!(
        sb.record_attempt(&id, attempt(None)).await,
        Ok(Recorded::Completed(..))
    ));
    let late = sb
        .record_attempt(&id, attempt(Some(DeclineReason::InsufficientFunds)))
        .await;
    assert!(matches!(late, Ok(Recorded::NotOpen(_))), "{late:?}");

    let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
    assert_eq!(checkout.status, CheckoutStatus::Complete);
    assert!(checkout.paid);
    let pi = checkout.payment_intent.expect("payment");
    let payment = sb.retrieve_payment(&pi).await.expect("payment");
    assert!(
        payment.succeeded(),
        "the completed payment is never overwritten"
    );
    assert_eq!(payment.amount_received, Money::from_cents(500));
    assert_eq!(payment.card_last4, "4242");
    assert_eq!(payment.last_error, None);
    assert_eq!(payment.currency, CURRENCY);
    assert_eq!(
        event_types(&sb).await,
        ["checkout.session.completed"],
        "one event, written with the completion"
    );
}

/// Many submits at once, a barrier releasing them together: exactly one completes the
/// checkout, and its payment is the good card's whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_leave_one_succeeded_payment() {
    let (_dir, sb) = sandbox().await;
    let id = open_checkout(&sb, false).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = vec![];
    for i in 0..16 {
        let (sb, id, barrier) = (sb.clone(), id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let decline = (i % 4 != 0).then_some(DeclineReason::Generic);
            barrier.wait().await;
            sb.record_attempt(&id, attempt(decline)).await
        }));
    }
    let mut completed = 0;
    for t in tasks {
        if matches!(t.await.expect("task"), Ok(Recorded::Completed(..))) {
            completed += 1;
        }
    }
    assert_eq!(completed, 1, "one submit completes the checkout");
    let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
    assert_eq!(checkout.status, CheckoutStatus::Complete);
    let pi = checkout.payment_intent.expect("payment");
    assert!(sb.retrieve_payment(&pi).await.expect("payment").succeeded());
    let payments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sandbox_payments")
        .fetch_one(sb.db.pool())
        .await
        .expect("count");
    assert_eq!(payments, 1, "one payment per checkout");
}

#[tokio::test]
async fn a_forgetful_sandbox_says_not_found() {
    let (_dir, sb) = sandbox().await;
    let id = open_checkout(&sb, false).await;
    sb.forget_everything().await;
    assert!(matches!(
        sb.retrieve_checkout(&id).await,
        Err(ProcessorError::NotFound)
    ));
    assert!(matches!(
        sb.expire_checkout(&id).await,
        Err(ProcessorError::NotFound)
    ));
}

fn refund(payment: &str, cents: i64) -> RefundRequest {
    RefundRequest {
        payment: payment.into(),
        amount: Money::from_cents(cents),
        reason: RefundReason::RequestedByCustomer,
        refund_ref: RefundId::generate(),
    }
}

/// A bank debit completes its checkout unpaid and processing; it cannot be refunded until it
/// settles; settling moves it once (a second settlement finds nothing), and its refund is
/// pending until settled in turn.
#[tokio::test]
async fn a_bank_debit_settles_once_and_its_refund_later() {
    let (_dir, sb) = sandbox().await;
    let id = open_checkout(&sb, true).await;
    assert!(matches!(
        sb.record_attempt(&id, debit(false)).await,
        Ok(Recorded::Completed(..))
    ));
    let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
    assert_eq!(checkout.status, CheckoutStatus::Complete);
    assert!(!checkout.paid, "a debit completes the checkout unpaid");
    let pi = checkout.payment_intent.expect("payment");
    let p = sb.retrieve_payment(&pi).await.expect("payment");
    assert_eq!(p.status, PaymentStatus::Processing);
    assert_eq!(p.method, MethodKind::UsBankAccount);
    assert_eq!(
        (p.card_brand.as_str(), p.card_last4.as_str()),
        (TEST_BANK, "6789")
    );
    assert_eq!(p.amount_received, Money::ZERO);
    assert!(matches!(
        sb.create_refund(&refund(&pi, 100), "rk1").await,
        Err(ProcessorError::Rejected(_))
    ));
    assert_eq!(
        sb.settle(Some(crate::clock::now_unix()))
            .await
            .expect("settle"),
        0,
        "not due yet"
    );

    assert_eq!(sb.settle_bank_debits().await, 1);
    assert_eq!(sb.settle_bank_debits().await, 0, "settled once");
    let p = sb.retrieve_payment(&pi).await.expect("payment");
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.amount_received, Money::from_cents(500));
    assert!(sb.retrieve_checkout(&id).await.expect("checkout").paid);

    let r = sb
        .create_refund(&refund(&pi, 200), "rk2")
        .await
        .expect("refund");
    assert_eq!(r.status, RefundStatus::Pending);
    let same = sb
        .create_refund(&refund(&pi, 200), "rk2")
        .await
        .expect("same");
    assert_eq!(same.id, r.id, "one refund per idempotency key");
    assert!(matches!(
        sb.create_refund(&refund(&pi, 301), "rk3").await,
        Err(ProcessorError::Rejected(_))
    ));
    assert_eq!(sb.settle_bank_debits().await, 1);
    let listed = sb.list_refunds(&pi).await.expect("refunds");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RefundStatus::Succeeded);
    assert_eq!(
        event_types(&sb).await,
        [
            "charge.refunded",
            "charge.refunded",
            "checkout.session.async_payment_succeeded",
            "checkout.session.completed",
            "payment_intent.succeeded",
        ]
    );
}

#[tokio::test]
async fn a_failing_bank_debit_ends_incomplete() {
    let (_dir, sb) = sandbox().await;
    let id = open_checkout(&sb, true).await;
    assert!(matches!(
        sb.record_attempt(&id, debit(true)).await,
        Ok(Recorded::Completed(..))
    ));
    assert_eq!(sb.settle_bank_debits().await, 1);
    let checkout = sb.retrieve_checkout(&id).await.expect("checkout");
    assert!(!checkout.paid);
    let p = sb
        .retrieve_payment(&checkout.payment_intent.expect("pi"))
        .await
        .expect("payment");
    assert_eq!(p.status, PaymentStatus::Incomplete);
    assert_eq!(p.last_error, Some(DeclineReason::InsufficientFunds));
    let types = event_types(&sb).await;
    assert!(
        types.contains(&"checkout.session.async_payment_failed".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"payment_intent.payment_failed".to_owned()),
        "{types:?}"
    );
}
