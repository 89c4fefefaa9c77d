//! Payment plans through the portal with Stripe as the processor, against the fake (both
//! databases): the canary patient's member saves a card on Stripe's setup page and sets up a
//! plan; each instalment is one off-session PaymentIntent under its own idempotency key, booked
//! once however often Stripe's signed events come, and nothing Stripe receives names the patient
//! or the care. A card whose bank wants the member present is left for them to pay on Stripe's
//! page; Stripe rate limiting, failing or losing its answer mid-instalment is retried 10 minutes
//! later with the same key; Stripe down at set-up (or its answer lost) leaves no plan and the
//! statement free.

use super::fake::{FakeStripe, Seen};
use super::fake_charges::{AUTHENTICATE, SUCCEEDS};
use super::objects::error_body;
use super::{event, KEY};
use crate::canary::import_canary;
use crate::common::*;
use crate::plans::{clock_to, due_at, instalment_status, page_flash, post_plan};
use axum::http::Method;
use patriotpay::config::{ProcessorKind, Secret};
use patriotpay::ids::{PatientId, StatementId, UserId};
use patriotpay::money::Money;
use patriotpay::payments::plans::NOTICE_SECS;

both_backends!(
    a_canary_plan_through_stripe_sends_no_phi_and_books_each_instalment_once,
    a_card_wanting_authentication_is_left_for_the_member_to_pay_on_stripes_page,
    stripe_down_mid_instalment_is_retried_with_the_same_key_and_booked_once,
    stripe_down_at_set_up_keeps_the_plan_and_charges_once,
);

const CHARGES: &str = "/v1/payment_intents";
const CHECKOUT_PAGE: &str = "https://checkout.stripe.com/c/pay/";
/// The canary statement's balance ($75.00: three instalments of $25.00, the practice's minimum).
const BALANCE: i64 = 7_500;
const INSTALMENT: i64 = 2_500;

/// The portal with Stripe (the fake) as its processor.
async fn stripe_app(backend: Backend) -> (FakeStripe, TestApp) {
    let fake = FakeStripe::start().await;
    let stripe_url = fake.url.clone();
    let app = TestApp::start_with(backend, |c| {
        c.processor = ProcessorKind::Stripe;
        c.stripe_secret_key = Some(Secret::new(KEY));
        c.stripe_api_url = Some(stripe_url);
    })
    .await;
    (fake, app)
}

/// A browser signed in as `user` now (on the server's clock: sessions end after weeks on it).
async fn signed_in(app: &TestApp, user: &UserId) -> Browser {
    let now = app.state().clock.now();
    let data = patriotpay::http::session::SessionData {
        created_at: now,
        last_seen: now,
        csrf: patriotpay::crypto::random_token(),
        member: Some(patriotpay::http::session::SignedIn {
            user_id: user.as_str().to_owned(),
            auth_at: now,
            mfa: false,
        }),
        ..Default::default()
    };
    app.browser_with_session(data).await
}

/// The canary patient's own member account (as `TestApp::signed_in_member` makes one for a demo
/// patient), signed in.
async fn canary_member(app: &TestApp, patient: &PatientId) -> (Browser, UserId) {
    use patriotpay::accounts;
    let crypto = &app.state().crypto;
    let now = app.state().clock.now();
    let account = accounts::NewAccount::prepare(crypto, "canary.planner@example.org")
        .await
        .expect("email");
    let credentials = accounts::NewCredentials::Local {
        password_hash: accounts::hash_password(patriotpay::phi::Phi::new(PASSWORD.into()))
            .await
            .expect("hash"),
    };
    let mut tx = app.db().begin_write().await.expect("tx");
    let user = accounts::create_member(&mut tx, &account, &credentials, None, now)
        .await
        .expect("member");
    accounts::grant_over_patient(
        &mut tx,
        &user,
        patriotpay::access::Role::Patient,
        &app.tenant,
        patient,
        "test",
        now,
    )
    .await
    .expect("grant");
    tx.commit().await.expect("commit");
    (signed_in(app, &user).await, user)
}

/// The session id in a Stripe Checkout page's URL.
fn session_in(url: &str) -> String {
    assert!(
        url.starts_with(CHECKOUT_PAGE),
        "off to Stripe's page: {url}"
    );
    let id = url.trim_start_matches(CHECKOUT_PAGE).split('#').next();
    id.expect("session id").to_owned()
}

/// Where Stripe sends the member back from `session`.
fn success_url(fake: &FakeStripe, session: &str) -> String {
    let f = fake.state.lock().expect("fake");
    let url = f.sessions[session]["success_url"].as_str().expect("url");
    url.replace("{CHECKOUT_SESSION_ID}", session)
}

/// "Save a card" on the cards page, the card entered on Stripe's setup page, and the return:
/// the card's id (listed by Stripe for the member's customer).
async fn save_card_at_stripe(
    b: &Browser,
    fake: &FakeStripe,
    card: (&str, &str, i64, i64),
) -> String {
    let csrf = b.csrf("/account/cards").await;
    let r = b.post("/account/cards/save", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), SEE_OTHER, "save a card");
    let session = session_in(&location(&r));
    let pm = fake.complete_setup(&session, card);
    let r = b.get(&success_url(fake, &session)).await;
    assert_eq!(
        (r.status(), location(&r)),
        (SEE_OTHER, "/account/cards".to_owned())
    );
    let html = b.page("/account/cards").await;
    assert!(html.contains(&t("account-card-saved")), "{html}");
    assert!(html.contains(&pm), "{html}");
    pm
}

/// The canary, its member and a card saved at Stripe: (patient's statement, browser, member,
/// card id).
async fn canary_with_card(
    app: &TestApp,
    fake: &FakeStripe,
    card: (&str, &str, i64, i64),
) -> (StatementId, Browser, UserId, String) {
    let (patient, statement) = import_canary(app.db(), &app.state().crypto, &app.tenant).await;
    assert_eq!(balance(app, &statement).await, BALANCE);
    let (b, user) = canary_member(app, &patient).await;
    let pm = save_card_at_stripe(&b, fake, card).await;
    (statement, b, user, pm)
}

/// Every off-session charge Stripe was asked for, in order.
fn charges(fake: &FakeStripe) -> Vec<Seen> {
    let seen = fake.seen().into_iter();
    seen.filter(|s| s.method == Method::POST && s.path == CHARGES)
        .collect()
}

fn key(s: &Seen) -> String {
    s.header("idempotency-key")
        .expect("idempotency key")
        .to_owned()
}

/// The checkout and its recorded idempotency key of instalment `seq`.
async fn attempt_of(app: &TestApp, seq: i64) -> (String, String) {
    sqlx::query_as(
        "SELECT c.id, c.idempotency_key FROM plan_instalments i
         JOIN checkouts c ON c.id = i.checkout_id WHERE i.seq = $1",
    )
    .bind(seq)
    .fetch_one(app.db().pool())
    .await
    .expect("instalment's checkout")
}

/// The PaymentIntent booked for instalment `seq`.
async fn payment_of(app: &TestApp, seq: i64) -> String {
    sqlx::query_scalar(
        "SELECT p.processor_payment_id FROM payments p
         JOIN plan_instalments i ON i.checkout_id = p.checkout_id WHERE i.seq = $1",
    )
    .bind(seq)
    .fetch_one(app.db().pool())
    .await
    .expect("instalment's payment")
}

/// Stripe's signed `event_type` event for PaymentIntent `pi` (its charge unexpanded, as in
/// events), delivered twice; then the job queue is run.
async fn deliver_intent_event(
    app: &TestApp,
    fake: &FakeStripe,
    id: &str,
    event_type: &str,
    pi: &str,
) {
    let mut object = fake.state.lock().expect("fake").intents[pi].clone();
    object["latest_charge"] = object["latest_charge"]["id"].clone();
    let ev = event(id, event_type, &object);
    for duplicate in [false, true] {
        let r = post_webhook(app, &ev).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(
            r.text().await.expect("body"),
            format!(r#"{{"duplicate":{duplicate},"received":true}}"#)
        );
    }
    app.run_jobs().await;
}

/// The plan's first instalment is charged at set-up, the second on its date: one PaymentIntent
/// each, with only the amount, the member's customer and card, off-session, and our ids; each
/// under its own key, the one recorded before Stripe was asked; each booked once, Stripe's
/// `payment_intent.succeeded` event (twice) adding nothing; nothing identifying sent.
async fn a_canary_plan_through_stripe_sends_no_phi_and_books_each_instalment_once(
    backend: Backend,
) {
    let (fake, app) = stripe_app(backend).await;
    let (statement, b, user, card) = canary_with_card(&app, &fake, SUCCEEDS).await;
    let customer: String =
        sqlx::query_scalar("SELECT customer_id FROM member_customers WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_one(app.db().pool())
            .await
            .expect("the member's customer");
    let made: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::POST && s.path == "/v1/customers")
        .collect();
    assert_eq!(made.len(), 1, "one customer");
    assert_eq!(
        made[0].form(),
        [("metadata[member]".to_owned(), user.as_str().to_owned())].into(),
        "the customer carries our member ref only"
    );

    let html = b.page("/account/plans").await;
    assert!(
        html.contains(&format!("name=\"plan_{statement}\"")),
        "{html}"
    );
    let r = post_plan(&b, &statement, "3", &card, "25.00", true).await;
    let html = page_flash(&b, r).await;
    assert!(html.contains(&t("plan-created")), "{html}");
    assert_eq!(instalment_status(&app, 1).await, "paid");
    assert_eq!(balance(&app, &statement).await, BALANCE - INSTALMENT);

    let sent = charges(&fake);
    assert_eq!(sent.len(), 1, "one charge for the first instalment");
    let (checkout, recorded) = attempt_of(&app, 1).await;
    assert_eq!(
        key(&sent[0]),
        recorded,
        "the key recorded before Stripe was asked"
    );
    let form = sent[0].form();
    let mut fields: Vec<&str> = form.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "amount",
            "automatic_payment_methods[allow_redirects]",
            "automatic_payment_methods[enabled]",
            "confirm",
            "currency",
            "customer",
            "expand[0]",
            "metadata[checkout]",
            "metadata[statements]",
            "off_session",
            "payment_method",
        ],
        "no description, receipt email or anything about the patient: {}",
        sent[0].body
    );
    assert_eq!(form["amount"], INSTALMENT.to_string());
    assert_eq!(form["customer"], customer);
    assert_eq!(form["payment_method"], card);
    assert_eq!(form["off_session"], "true");
    assert_eq!(form["metadata[checkout]"], checkout);
    assert_eq!(form["metadata[statements]"], statement.as_str());

    // Stripe's event for the charge, twice: nothing more is booked.
    let first = payment_of(&app, 1).await;
    deliver_intent_event(
        &app,
        &fake,
        "evt_plan_first",
        "payment_intent.succeeded",
        &first,
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'payment'")
            .await,
        1
    );
    assert_eq!(balance(&app, &statement).await, BALANCE - INSTALMENT);

    // The second: noticed three days ahead (no charge), charged on its date.
    let due2 = due_at(&app, 2).await;
    clock_to(&app, due2 - NOTICE_SECS);
    assert_eq!(app.run_autopay().await, 1, "the notice");
    assert_eq!(charges(&fake).len(), 1, "a notice charges nothing");
    clock_to(&app, due2);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "paid");
    assert_eq!(balance(&app, &statement).await, BALANCE - 2 * INSTALMENT);
    let second = payment_of(&app, 2).await;
    assert_ne!(second, first);
    deliver_intent_event(
        &app,
        &fake,
        "evt_plan_second",
        "payment_intent.succeeded",
        &second,
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(balance(&app, &statement).await, BALANCE - 2 * INSTALMENT);
    let b = signed_in(&app, &user).await;
    let html = text(&b.page("/account/plans").await);
    assert!(
        html.contains(&ta(
            "plan-summary",
            &[
                ("paid", &Money::from_cents(2 * INSTALMENT).to_string()),
                (
                    "card",
                    &ta("plan-card", &[("brand", "Visa"), ("last4", "4242")])
                ),
                ("every", &t("plan-every-month")),
            ]
        )),
        "{html}"
    );

    // Each charge under its own key, the one its attempt recorded.
    let sent = charges(&fake);
    assert_eq!(sent.len(), 2, "one charge per instalment");
    assert_ne!(key(&sent[0]), key(&sent[1]));
    assert_eq!(key(&sent[1]), attempt_of(&app, 2).await.1);
    assert_eq!(sent[1].form()["amount"], INSTALMENT.to_string());
    fake.assert_no_canary();
    app.finish().await;
}

/// Stripe's test card 4000 0027 6000 3184 wants its holder present: the first instalment is left
/// "needs you" with "pay now" on the plans page, nothing booked, its attempt closed (Stripe's
/// `payment_intent.payment_failed` event changes nothing, nor does autopay); "pay now" opens
/// Stripe's hosted page and the signed completion pays the instalment.
async fn a_card_wanting_authentication_is_left_for_the_member_to_pay_on_stripes_page(
    backend: Backend,
) {
    let (fake, app) = stripe_app(backend).await;
    let (statement, b, user, card) = canary_with_card(&app, &fake, AUTHENTICATE).await;
    let r = post_plan(&b, &statement, "3", &card, "25.00", true).await;
    let html = page_flash(&b, r).await;
    assert!(html.contains(&t("plan-created-confirm")), "{html}");
    assert!(
        html.contains(&t("plan-why-authentication_required")),
        "{html}"
    );
    let pay_now = ta(
        "plan-pay-now",
        &[("amount", &Money::from_cents(INSTALMENT).to_string())],
    );
    assert!(text(&html).contains(&pay_now), "{html}");
    assert!(html.contains("action=\"/account/plans/pay\""), "{html}");
    assert_eq!(instalment_status(&app, 1).await, "action_required");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(balance(&app, &statement).await, BALANCE);
    let (attempt, _) = attempt_of(&app, 1).await;
    let closed: String = sqlx::query_scalar("SELECT status FROM checkouts WHERE id = $1")
        .bind(&attempt)
        .fetch_one(app.db().pool())
        .await
        .expect("attempt");
    assert_eq!(
        closed, "failed",
        "the attempt no longer holds the statement"
    );

    // Stripe's event for the failed PaymentIntent, and autopay a day later: nothing moves.
    let sent = charges(&fake);
    assert_eq!(sent.len(), 1);
    let pi = {
        let f = fake.state.lock().expect("fake");
        let (pi, intent) = f
            .intents
            .iter()
            .find(|(_, pi)| pi["metadata"]["checkout"] == attempt.as_str())
            .expect("Stripe's PaymentIntent for the attempt");
        assert_eq!(intent["status"], "requires_payment_method");
        pi.clone()
    };
    deliver_intent_event(
        &app,
        &fake,
        "evt_plan_auth",
        "payment_intent.payment_failed",
        &pi,
    )
    .await;
    app.state().clock.advance(86_400);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 1).await, "action_required");
    assert_eq!(charges(&fake).len(), 1, "autopay does not charge it again");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);

    // "Pay now": Stripe's hosted page for the instalment, paid there; the signed event books it.
    let plan: String = sqlx::query_scalar("SELECT id FROM payment_plans")
        .fetch_one(app.db().pool())
        .await
        .expect("plan");
    let b = signed_in(&app, &user).await;
    let csrf = b.csrf("/account/plans").await;
    let r = b
        .post(
            "/account/plans/pay",
            &[("csrf", &csrf), ("plan", &plan), ("seq", "1")],
        )
        .await;
    assert_eq!(r.status(), SEE_OTHER);
    let session = session_in(&location(&r));
    let paid = fake.pay(&session, true);
    assert_eq!(paid["amount_total"], INSTALMENT);
    let ev = event("evt_plan_pay_now", "checkout.session.completed", &paid);
    assert_eq!(
        post_webhook(&app, &ev).await.status(),
        reqwest::StatusCode::OK
    );
    app.run_jobs().await;
    assert_eq!(instalment_status(&app, 1).await, "paid");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, BALANCE - INSTALMENT);
    fake.assert_no_canary();
    app.finish().await;
}

/// Stripe rate limits the second instalment's charge (429), then does the work but its answer is
/// lost (a proxy's 502): each time the instalment stays "being charged" and nothing is booked,
/// and 10 minutes later (not sooner) the same request goes again under the same key; Stripe
/// replays its first answer, and the one payment is booked once, its event adding nothing.
async fn stripe_down_mid_instalment_is_retried_with_the_same_key_and_booked_once(backend: Backend) {
    let (fake, app) = stripe_app(backend).await;
    let (statement, b, user, card) = canary_with_card(&app, &fake, SUCCEEDS).await;
    let r = post_plan(&b, &statement, "3", &card, "25.00", true).await;
    assert!(page_flash(&b, r).await.contains(&t("plan-created")));
    let due2 = due_at(&app, 2).await;
    clock_to(&app, due2 - NOTICE_SECS);
    app.run_autopay().await;
    clock_to(&app, due2);

    fake.script_for(
        Method::POST,
        CHARGES,
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            None,
            "Too many requests made to the API too quickly",
        ),
    );
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "charging");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let html = signed_in(&app, &user).await.page("/account/plans").await;
    assert!(html.contains(&t("plan-inst-charging")), "{html}");
    let sent = charges(&fake);
    assert_eq!(sent.len(), 2);
    let (_, recorded) = attempt_of(&app, 2).await;
    assert_eq!(key(&sent[1]), recorded);

    // Not before 10 minutes; then the same request, which Stripe works but whose answer is lost.
    // (The server's clock runs on with the wall clock, so times are read, not assumed.)
    let (next, tried): (i64, i64) = sqlx::query_as(
        "SELECT i.next_attempt_at, c.created_at FROM plan_instalments i
         JOIN checkouts c ON c.id = i.checkout_id WHERE i.seq = 2",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("instalment");
    assert_eq!(next - tried, 600, "the same request ten minutes on");
    clock_to(&app, next - 60);
    assert_eq!(app.run_autopay().await, 0, "not yet");
    assert_eq!(charges(&fake).len(), 2);
    clock_to(&app, next);
    fake.lose_answer_for(Method::POST, CHARGES, 502);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "charging");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, BALANCE - INSTALMENT);

    // 10 minutes on: the same key again; Stripe's answer now is the charge it made.
    app.state().clock.advance(600);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 2).await, "paid");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(balance(&app, &statement).await, BALANCE - 2 * INSTALMENT);
    let sent = charges(&fake);
    assert_eq!(sent.len(), 4, "the 429, the lost answer, the replay");
    for s in &sent[1..] {
        assert_eq!(key(s), recorded, "one attempt, one key");
        assert!(super::fake::same_params(&s.body, &sent[1].body));
    }
    assert_eq!(attempt_of(&app, 2).await.1, recorded);
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM plan_instalments WHERE seq = 2")
        .fetch_one(app.db().pool())
        .await
        .expect("attempts");
    assert_eq!(attempts, 1, "Stripe's trouble is not a try of the card");
    let second = payment_of(&app, 2).await;
    let (checkout, _) = attempt_of(&app, 2).await;
    let made = fake
        .state
        .lock()
        .expect("fake")
        .intents
        .values()
        .filter(|pi| pi["metadata"]["checkout"] == checkout.as_str())
        .count();
    assert_eq!(made, 1, "Stripe charged the card once");
    deliver_intent_event(
        &app,
        &fake,
        "evt_plan_retried",
        "payment_intent.succeeded",
        &second,
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(balance(&app, &statement).await, BALANCE - 2 * INSTALMENT);
    app.run_autopay().await;
    assert_eq!(charges(&fake).len(), 4, "nothing more is charged");
    fake.assert_no_canary();
    app.finish().await;
}

/// Stripe down at set-up: the plan stands, its first instalment waits as being charged (the
/// statement stays in the plan, so a second set-up cannot charge again), and autopay repeats
/// the same request ten minutes later. A charge Stripe made whose answer was lost is booked
/// once, from its event or from the repeat.
async fn stripe_down_at_set_up_keeps_the_plan_and_charges_once(backend: Backend) {
    let (fake, app) = stripe_app(backend).await;
    let (statement, b, user, card) = canary_with_card(&app, &fake, SUCCEEDS).await;
    fake.script_for(
        Method::POST,
        CHARGES,
        503,
        error_body("api_error", None, None, "Service unavailable"),
    );
    let r = post_plan(&b, &statement, "3", &card, "25.00", true).await;
    let html = page_flash(&b, r).await;
    assert!(html.contains(&t("plan-created-pending")), "{html}");
    assert!(html.contains(&t("plan-inst-charging")), "{html}");
    assert!(
        !html.contains(&format!("name=\"plan_{statement}\"")),
        "the statement is in the plan: {html}"
    );
    assert_eq!(instalment_status(&app, 1).await, "charging");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    let (_, first_key) = attempt_of(&app, 1).await;

    // Ten minutes on Stripe works the same request but the answer is lost; its event books it.
    app.state().clock.advance(600);
    fake.lose_answer_for(Method::POST, CHARGES, 502);
    app.run_autopay().await;
    assert_eq!(instalment_status(&app, 1).await, "charging");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
    let pi = payment_of_attempt(&fake, &attempt_of(&app, 1).await.0);
    deliver_intent_event(
        &app,
        &fake,
        "evt_plan_lost",
        "payment_intent.succeeded",
        &pi,
    )
    .await;
    assert_eq!(instalment_status(&app, 1).await, "paid");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(balance(&app, &statement).await, BALANCE - INSTALMENT);

    // Nothing is charged again for it, however long.
    app.state().clock.advance(3600);
    app.run_autopay().await;
    let sent = charges(&fake);
    assert_eq!(sent.len(), 2, "the 503 and the repeat");
    for s in &sent {
        assert_eq!(key(s), first_key, "one attempt, one key");
    }
    let html = signed_in(&app, &user).await.page("/account/plans").await;
    assert!(html.contains(&t("plan-inst-paid")), "{html}");
    fake.assert_no_canary();
    app.finish().await;
}

/// The id of Stripe's PaymentIntent made for our checkout `attempt`.
fn payment_of_attempt(fake: &FakeStripe, attempt: &str) -> String {
    let f = fake.state.lock().expect("fake");
    let (id, _) = f
        .intents
        .iter()
        .find(|(_, pi)| pi["metadata"]["checkout"] == attempt)
        .expect("Stripe charged for the attempt");
    id.clone()
}
