//! The audit chain (both databases): parallel writers and sealers leave one unbroken chain;
//! edits, deletions, insertions and reorderings made behind the application's back (triggers
//! dropped first, as someone holding the database's credentials would) are each caught at their
//! seq, and so are edited seals; a truncation after an anchor, and a history rewritten with
//! fresh seals, are caught by the checkpoint; an event committing below the head is reported and
//! alerted once; the `audit` commands' output and exit codes, and an export verified offline.

use crate::common::{Backend, TestApp};
use patriotpay::audit::chain::{self, ChainEvent, Sealing};
use patriotpay::audit::verify::{Problem, Report};
use patriotpay::audit::{anchor, Actor, Event, Outcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod cli;
mod tamper;

/// Writes one view-like audit event on the pool (as a page view does).
pub(crate) async fn record(db: &patriotpay::db::Db, who: &str, n: usize) {
    record_on(db.pool(), who, n).await
}

async fn record_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(exec: E, who: &str, n: usize) {
    record_at(exec, who, n, None).await
}

/// Writes one audit event stamped `at` (the request's time), or now.
pub(crate) async fn record_at<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    who: &str,
    n: usize,
    at: Option<i64>,
) {
    let actor = Actor {
        id: format!("test:{who}"),
        on_behalf_of: None,
        request_id: Some(format!("req-{who}-{n}")),
        address: Some("192.0.2.7".into()),
        at,
    };
    let resource = format!("res-{n}");
    patriotpay::audit::record(
        exec,
        Event {
            actor: &actor,
            tenant: None,
            patient: None,
            action: "test.view",
            resource: Some(&resource),
            outcome: Outcome::Success,
        },
    )
    .await
    .expect("record an audit event");
}

/// Seals what is committed, as the server's loop does, at `now` on the default grace.
pub(crate) async fn seal(app: &TestApp, now: i64) -> chain::SealReport {
    chain::seal_pending(app.db(), &app.state().alerts, now, &Sealing::default())
        .await
        .expect("seal")
}

/// Seals everything, gaps included: once now, where a gap's grace starts when first seen, then
/// an hour on, past any grace.
pub(crate) async fn seal_past_grace(app: &TestApp) -> chain::SealReport {
    let now = patriotpay::clock::now_unix();
    seal(app, now).await;
    seal(app, now + 3600).await
}

pub(crate) fn anchor_file(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("audit-anchors.jsonl")
}

pub(crate) async fn verify(app: &TestApp) -> Report {
    patriotpay::audit::verify::verify_db(
        app.db(),
        app.state().crypto.provider().as_ref(),
        &anchor_file(app),
        &|_, _| {},
    )
    .await
    .expect("verify runs")
}

/// Asserts the chain verifies; returns the report.
pub(crate) async fn assert_ok(app: &TestApp, after: &str) -> Report {
    let r = verify(app).await;
    assert!(r.ok(), "{after}: {:?}", r.broken);
    r
}

/// Asserts verify names `seq` as the first broken one, for `problem`.
pub(crate) async fn assert_broken(app: &TestApp, seq: i64, problem: Problem, what: &str) {
    let r = verify(app).await;
    let b = r.broken.unwrap_or_else(|| panic!("{what}: not caught"));
    assert_eq!(
        (b.seq, b.problem),
        (Some(seq), problem),
        "{what}: {}",
        b.detail
    );
}

pub(crate) async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sql)
        .execute(app.db().pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What someone holding the database's credentials does first.
pub(crate) async fn drop_triggers(app: &TestApp) {
    let drops: &[&str] = match app.backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_seals_no_update",
            "DROP TRIGGER audit_seals_no_delete",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER audit_events_no_update ON audit_events",
            "DROP TRIGGER audit_events_no_truncate ON audit_events",
            "DROP TRIGGER audit_seals_no_update ON audit_seals",
            "DROP TRIGGER audit_seals_no_truncate ON audit_seals",
        ],
    };
    for d in drops {
        exec(app, d).await;
    }
}

pub(crate) async fn event_at(app: &TestApp, seq: i64) -> ChainEvent {
    sqlx::query_as(&format!(
        "SELECT {} FROM audit_events WHERE seq = $1",
        chain::EVENT_COLUMNS
    ))
    .bind(seq)
    .fetch_one(app.db().pool())
    .await
    .expect("event")
}

/// Inserts `ev` at `seq` directly, as only someone bypassing the application can.
pub(crate) async fn insert_at(app: &TestApp, seq: i64, ev: &ChainEvent) {
    let overriding = match app.backend {
        Backend::Sqlite => "",
        Backend::Postgres => "OVERRIDING SYSTEM VALUE",
    };
    sqlx::query(&format!(
        "INSERT INTO audit_events ({}) {overriding}
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        chain::EVENT_COLUMNS
    ))
    .bind(seq)
    .bind(ev.id.clone())
    .bind(ev.at)
    .bind(ev.actor.clone())
    .bind(ev.on_behalf_of.clone())
    .bind(ev.tenant_id.clone())
    .bind(ev.patient_id.clone())
    .bind(ev.action.clone())
    .bind(ev.resource.clone())
    .bind(ev.request_id.clone())
    .bind(ev.address.clone())
    .bind(ev.outcome.clone())
    .execute(app.db().pool())
    .await
    .expect("insert at seq");
}

/// Leaves one seq without an event below a committed one, as a rolled-back insert does on
/// PostgreSQL; returns it. SQLite gives a rolled-back insert's seq to the next insert, so there
/// the test skips the seq itself, which is the state PostgreSQL's rollback leaves.
pub(crate) async fn make_gap(app: &TestApp) -> i64 {
    match app.backend {
        Backend::Postgres => {
            let mut tx = app.db().pool().begin().await.expect("begin");
            record_on(&mut *tx, "rolled-back", 0).await;
            tx.rollback().await.expect("rollback");
        }
        Backend::Sqlite => {
            exec(
                app,
                "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'audit_events'",
            )
            .await
        }
    }
    record(app.db(), "after-gap", 0).await;
    let after: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
        .fetch_one(app.db().pool())
        .await
        .expect("max");
    after - 1
}

pub(crate) async fn alerts_of(app: &TestApp, kind: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM alerts WHERE kind = '{kind}'"
    ))
    .await
}

both_backends!(
    parallel_writers_and_sealers_leave_one_chain,
    an_event_committed_below_the_head_is_reported_and_alerted_once,
    gaps_behind_a_backlog_wait_out_one_grace_together,
);

async fn parallel_writers_and_sealers_leave_one_chain(backend: Backend) {
    let app = TestApp::start(backend).await;
    let db = app.db().clone();
    let writing = Arc::new(AtomicBool::new(true));
    // Two sealers racing each other (and the server's own loop) while eight writers write.
    let mut sealers = vec![];
    for _ in 0..2 {
        let (db, alerts, writing) = (db.clone(), app.state().alerts.clone(), writing.clone());
        sealers.push(tokio::spawn(async move {
            let mut sealed = 0;
            while writing.load(Ordering::Relaxed) {
                let r = chain::seal_pending(
                    &db,
                    &alerts,
                    patriotpay::clock::now_unix(),
                    &Sealing::default(),
                )
                .await
                .expect("seal while writers write");
                sealed += r.sealed_events;
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
            sealed
        }));
    }
    let mut writers = vec![];
    for w in 0..8 {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            let (mut committed, mut rolled_back) = (0i64, 0i64);
            for i in 0..50 {
                let who = format!("writer-{w}");
                match i % 10 {
                    // A change that fails: its event goes with it (a gap on PostgreSQL).
                    3 => {
                        let mut tx = db.begin_write().await.expect("begin");
                        record_on(&mut *tx, &who, i).await;
                        tx.rollback().await.expect("rollback");
                        rolled_back += 1;
                    }
                    // A change that commits its event in its own transaction.
                    7 => {
                        let mut tx = db.begin_write().await.expect("begin");
                        record_on(&mut *tx, &who, i).await;
                        tx.commit().await.expect("commit");
                        committed += 1;
                    }
                    // A view: one autocommit insert.
                    _ => {
                        record(&db, &who, i).await;
                        committed += 1;
                    }
                }
            }
            (committed, rolled_back)
        }));
    }
    let (mut committed, mut rolled_back) = (0, 0);
    for w in writers {
        let (c, r) = w.await.expect("writer");
        committed += c;
        rolled_back += r;
    }
    writing.store(false, Ordering::Relaxed);
    for s in sealers {
        s.await.expect("sealer");
    }
    assert_eq!((committed, rolled_back), (360, 40));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE actor LIKE 'test:writer-%'")
            .await,
        360
    );
    // Past the grace the rolled-back seqs are sealed as gaps and everything is sealed.
    let last = seal_past_grace(&app).await;
    assert_eq!(last.lag_secs, None, "nothing left unsealed");
    let r = assert_ok(&app, "after parallel writers").await;
    let events = app.count("SELECT COUNT(*) FROM audit_events").await;
    assert_eq!(r.unsealed, 0);
    assert_eq!(
        r.events_sealed as i64, events,
        "every committed event sealed"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events e WHERE NOT EXISTS
             (SELECT 1 FROM audit_seals s WHERE s.seq = e.seq AND s.kind = 'event')"
        )
        .await,
        0,
        "no event without its seal"
    );
    // One seal per seq from 1 to the head: no seq sealed twice, none skipped.
    let (seals, max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), MAX(seq) FROM audit_seals")
        .fetch_one(app.db().pool())
        .await
        .expect("seals");
    assert_eq!((seals, r.head_seq), (max, max));
    match backend {
        Backend::Postgres => assert!(
            r.gaps >= rolled_back as u64,
            "each rolled-back insert took a seq: {} gaps",
            r.gaps
        ),
        Backend::Sqlite => assert_eq!(r.gaps, 0, "SQLite reuses a rolled-back seq"),
    }
    assert_eq!(alerts_of(&app, "audit-late-commit").await, 0);
    assert_eq!(alerts_of(&app, "audit-seal-lag").await, 0);
    app.finish().await;
}

async fn an_event_committed_below_the_head_is_reported_and_alerted_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    for n in 0..3 {
        record(app.db(), "before", n).await;
    }
    seal(&app, patriotpay::clock::now_unix()).await;
    // An event whose transaction stays open while a later one commits.
    let mut held = match backend {
        Backend::Postgres => {
            let mut tx = app.db().pool().begin().await.expect("begin");
            record_on(&mut *tx, "late", 0).await;
            Some(tx)
        }
        // SQLite runs one writer at a time: nothing commits while a transaction holds an
        // insert. The gap is made as a rollback leaves it, and the late event inserted at it
        // below, which is the state a late commit leaves.
        Backend::Sqlite => None,
    };
    let gap = match held {
        Some(_) => {
            record(app.db(), "after-late", 0).await;
            sqlx::query_scalar::<_, i64>("SELECT MAX(seq) FROM audit_events")
                .fetch_one(app.db().pool())
                .await
                .expect("max")
                - 1
        }
        None => make_gap(&app).await,
    };
    // After every event's time; an hour on is past any grace a sealer's note could have left.
    let now = patriotpay::clock::now_unix();
    let later = now + 3600;
    let r = seal(&app, now).await;
    assert_eq!(
        r.waiting_on,
        Some(gap),
        "the sealer waits at the missing seq"
    );
    assert!(r.head_seq < gap);
    // A sealer held up past the lag threshold (a long grace here) raises one alert.
    let slow = Sealing {
        grace_secs: 10_000,
        lag_alert_secs: 300,
    };
    for _ in 0..2 {
        let r = chain::seal_pending(app.db(), &app.state().alerts, now + 400, &slow)
            .await
            .expect("seal");
        assert!(r.lag_secs.is_some_and(|l| l >= 400), "{:?}", r.lag_secs);
    }
    assert_eq!(alerts_of(&app, "audit-seal-lag").await, 1);
    // Past the grace the seq is sealed as a gap and the later event after it.
    let r = seal(&app, later).await;
    assert_eq!((r.waiting_on, r.head_seq), (None, gap + 1));
    let ok = assert_ok(&app, "gap sealed").await;
    assert_eq!(ok.gaps, 1);
    // Now the held transaction commits (or, on SQLite, its event appears at the gap).
    match held.take() {
        Some(tx) => tx.commit().await.expect("commit late"),
        None => {
            let mut late = event_at(&app, gap + 1).await;
            late.id = Some(uuid::Uuid::new_v4().to_string());
            late.actor = Some("test:late".into());
            insert_at(&app, gap, &late).await;
        }
    }
    for _ in 0..2 {
        seal(&app, later).await;
    }
    assert_eq!(
        alerts_of(&app, "audit-late-commit").await,
        1,
        "alerted once, whichever sealer saw it"
    );
    let r = verify(&app).await;
    assert_eq!(r.extra, vec![gap], "reported as outside the chain");
    let b = r
        .broken
        .expect("not OK while an event is outside the chain");
    assert_eq!((b.seq, b.problem), (Some(gap), Problem::ExtraEvent));
    // The rest of the chain still verifies around it.
    assert_eq!(r.head_seq, gap + 1);
    // The anchor of this head verifies; the outside event stays reported.
    anchor::append(
        app.db(),
        app.state().crypto.provider().as_ref(),
        &anchor_file(&app),
        now,
    )
    .await
    .expect("anchor");
    let r = verify(&app).await;
    assert!(r.checkpoints_ok >= 1);
    assert_eq!(r.broken.map(|b| b.problem), Some(Problem::ExtraEvent));
    app.finish().await;
}

/// Three gaps more than a batch apart and a run of missing seqs longer than a batch, behind a
/// backlog: the first look notes them all, so one grace later everything is sealed in one call,
/// not one grace per batch.
async fn gaps_behind_a_backlog_wait_out_one_grace_together(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut gaps = vec![];
    for g in 0..3 {
        let mut tx = app.db().begin_write().await.expect("begin");
        for n in 0..(chain::BATCH + 200) {
            record_on(&mut *tx, &format!("backlog-{g}"), n).await;
        }
        tx.commit().await.expect("commit");
        gaps.push(make_gap(&app).await);
    }
    // And a run of missing seqs longer than a batch (as a sequence that jumped leaves).
    let jump = chain::BATCH as i64 + 500;
    match backend {
        Backend::Postgres => {
            exec(
                &app,
                &format!(
                    "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'),
                                   (SELECT MAX(seq) FROM audit_events) + {jump})"
                ),
            )
            .await
        }
        Backend::Sqlite => {
            exec(
                &app,
                &format!(
                    "UPDATE sqlite_sequence SET seq = seq + {jump} WHERE name = 'audit_events'"
                ),
            )
            .await
        }
    }
    record(app.db(), "after-jump", 0).await;
    let now = patriotpay::clock::now_unix();
    let first = seal(&app, now).await;
    assert_eq!(first.waiting_on, Some(gaps[0]), "stopped at the first gap");
    // Each gap's grace started at its first sighting, by this call or the server's loop (noted
    // under the event after it).
    let after_jump: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
        .fetch_one(app.db().pool())
        .await
        .expect("max");
    let seen: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT at FROM audit_chain_notes WHERE note = 'gap_seen' AND seq IN ({}, {}, {}, {})",
        gaps[0] + 1,
        gaps[1] + 1,
        gaps[2] + 1,
        after_jump
    ))
    .fetch_all(app.db().pool())
    .await
    .expect("notes");
    assert_eq!(seen.len(), 4, "every gap noted at the first look");
    let last_seen = seen.into_iter().max().expect("seen");
    let r = seal(&app, last_seen + chain::GAP_GRACE_SECS).await;
    assert_eq!(r.waiting_on, None);
    assert_eq!(
        r.sealed_gaps,
        3 + jump as u64,
        "every gap, one grace after the first look"
    );
    assert_eq!(r.lag_secs, None, "everything sealed");
    let ok = assert_ok(&app, "backlog sealed").await;
    assert_eq!((ok.gaps, ok.unsealed), (3 + jump as u64, 0));
    app.finish().await;
}
