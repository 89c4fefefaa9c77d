//! The job queue against Stripe's trouble (issue 10): an event whose re-fetch meets Stripe
//! down is acknowledged, kept, and worked again after its backoff, once.

use super::fake::FakeStripe;
use super::objects::error_body;
use super::KEY;
use crate::common::{balance, location, post_webhook, Backend, TestApp};
use patriotpay::config::{ProcessorKind, Secret};
use reqwest::StatusCode;

both_backends!(an_event_met_by_stripe_down_is_worked_again_after_its_backoff);

async fn an_event_met_by_stripe_down_is_worked_again_after_its_backoff(backend: Backend) {
    let fake = FakeStripe::start().await;
    let stripe_url = fake.url.clone();
    let app = TestApp::start_with(backend, |c| {
        c.processor = ProcessorKind::Stripe;
        c.stripe_secret_key = Some(Secret::new(KEY));
        c.stripe_api_url = Some(stripe_url);
    })
    .await;
    let statement = app.statement_of(1).await;
    let before = balance(&app, &statement).await;
    let b = app.verified_visitor(1).await;
    let to = location(&b.pay("5.00").await);
    let session = to
        .trim_start_matches("https://checkout.stripe.com/c/pay/")
        .split('#')
        .next()
        .expect("id")
        .to_owned();
    fake.pay(&session, true);
    // Stripe answers the re-fetch with a 500 once.
    fake.script(
        500,
        error_body("api_error", None, None, "An unknown error occurred"),
    );
    let event = serde_json::json!({
        "id": "evt_stripe_down", "object": "event", "type": "checkout.session.completed",
        "data": { "object": { "id": session, "object": "checkout.session" } },
    })
    .to_string();
    let r = post_webhook(&app, &event).await;
    assert_eq!(r.status(), StatusCode::OK, "acknowledged and kept");
    let (state, attempts, error): (String, i64, Option<String>) = sqlx::query_as(
        "SELECT state, attempts, last_error FROM processor_events WHERE event_id = 'evt_stripe_down'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("job");
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(
        error.is_some_and(|e| e.contains("unreachable")),
        "the reason is kept"
    );
    assert_eq!(
        balance(&app, &statement).await,
        before,
        "nothing booked yet"
    );
    // Not before its backoff…
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    // …and then once.
    app.state().clock.advance(11);
    app.run_jobs().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, before - 500);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM processor_events WHERE state = 'done' AND outcome = 'recorded'"
        )
        .await,
        1
    );
    app.finish().await;
}
