//! Balance reminders by text (issue 13): after an imported statement's first text, a reminder on
//! day 7 and day 14 (the practice's default cadence) and on the due date, each once, each with a
//! fresh link (the older ones revoked); none for a paid statement, an opted-out number or a
//! statement staff paused. Both databases.

use crate::common::{location, Backend, Browser, TestApp};

both_backends!(reminders_follow_the_cadence_and_stop_when_paid_or_paused);

const DAY: i64 = 86_400;

fn reminders_to(texts: &[crate::common::OutboxMessage], number: &str) -> usize {
    texts
        .iter()
        .filter(|t| t.template == "reminder" && t.to == number)
        .count()
}

async fn reminders_follow_the_cadence_and_stop_when_paid_or_paused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let path = format!("{}/../samples/statements.csv", env!("CARGO_MANIFEST_DIR"));
    let o = app.cli(&["import", &path, "--practice", app.tenant.as_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every statement falls due 20 days from now (the sample's dates are fixed).
    let s = app.state();
    let due = time::OffsetDateTime::from_unix_timestamp(s.clock.now() + 20 * DAY)
        .expect("time")
        .date();
    sqlx::query("UPDATE statements SET due_date = $1 WHERE external_id IS NOT NULL")
        .bind(format!("{due}"))
        .execute(app.db().pool())
        .await
        .expect("due dates");
    assert_eq!(app.run_reminders().await, 0, "nothing due on day 0");

    // S-2026-0003 (+13125550103) is paused by staff; S-2026-0002 (+13125550102) gets paid.
    let paused: String =
        sqlx::query_scalar("SELECT id FROM statements WHERE external_id = 'S-2026-0003'")
            .fetch_one(app.db().pool())
            .await
            .expect("statement");
    assert!(patriotpay::messages::reminders::pause(
        &s.db,
        &patriotpay::ids::StatementId::from_db(paused.clone()),
        s.clock.now()
    )
    .await
    .expect("pause"));

    s.clock.advance(7 * DAY);
    // Patient 1002 pays S-2026-0002 in full from its first text.
    let first = app
        .outbox()
        .await
        .into_iter()
        .find(|t| t.to == "+13125550102")
        .expect("text");
    let b = Browser::new(&app);
    b.open_link(&first.link.expect("link")).await;
    assert_eq!(
        location(&b.submit_dob("06", "21", "2012").await),
        "/summary"
    );
    let balance: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(amount_cents) AS BIGINT) FROM ledger_entries l
         JOIN statements s ON s.id = l.statement_id WHERE s.external_id = 'S-2026-0002'",
    )
    .fetch_one(app.db().pool())
    .await
    .expect("balance");
    let checkout = location(
        &b.pay(&format!("{}.{:02}", balance / 100, balance % 100))
            .await,
    );
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    assert!(location(&b.get(&back).await).starts_with("/receipt/"));
    app.run_jobs().await;

    // Day 7: patient 1001's S-2026-0001 is reminded; not their S-2026-0004 (it owes nothing),
    // the paid one or the paused one.
    assert_eq!(app.run_reminders().await, 1);
    assert_eq!(app.run_reminders().await, 0, "each step once");
    let texts = app.outbox().await;
    assert_eq!(reminders_to(&texts, "+13125550101"), 1);
    assert_eq!(reminders_to(&texts, "+13125550102"), 0, "paid");
    assert_eq!(reminders_to(&texts, "+13125550103"), 0, "paused");
    let reminder = texts
        .iter()
        .find(|t| t.template == "reminder")
        .expect("reminder");
    assert!(reminder
        .body
        .starts_with("Riverside Family Medicine: A reminder that your statement has a balance."));
    // Its fresh link works; the statement's first link no longer does.
    let b = Browser::new(&app);
    b.open_link(reminder.link.as_deref().expect("link")).await;
    assert_eq!(
        location(&b.submit_dob("03", "14", "1984").await),
        "/summary"
    );
    // Of patient 1001's two first texts, only the link of the statement not reminded (S-2026-0004)
    // still opens: the reminded one's was revoked for the reminder's.
    let mut working = 0;
    for t in texts
        .iter()
        .filter(|t| t.template == "pay-link" && t.to == "+13125550101")
    {
        let c = Browser::new(&app);
        c.open_link(t.link.as_deref().expect("link")).await;
        if location(&c.submit_dob("03", "14", "1984").await) == "/summary" {
            working += 1;
        }
    }
    assert_eq!(working, 1);

    // Day 14, then the due date (day 20; looked at on day 25): one more each.
    s.clock.advance(7 * DAY);
    assert_eq!(app.run_reminders().await, 1);
    s.clock.advance(11 * DAY);
    assert_eq!(app.run_reminders().await, 1, "the due date");
    assert_eq!(app.run_reminders().await, 0);
    assert_eq!(reminders_to(&app.outbox().await, "+13125550101"), 3);
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM statement_reminders ORDER BY statement_id, step")
            .fetch_all(app.db().pool())
            .await
            .expect("steps");
    assert!(outcomes.iter().any(|o| o == "paid"), "{outcomes:?}");
    app.finish().await;
}
