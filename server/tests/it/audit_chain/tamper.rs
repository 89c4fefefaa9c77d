//! Tampering behind the application's back (both databases): with the append-only triggers
//! dropped, each edit, deletion, insertion and reordering of events, and each edit or removal of
//! a seal, is caught by `verify` at its seq and for its reason; undone, the chain verifies again.
//! After an anchor, cutting off the newest events, or rewriting history and sealing it afresh,
//! is caught by the checkpoint, and an edited checkpoint by its MAC.

use super::{
    anchor_file, assert_broken, assert_ok, drop_triggers, event_at, exec, insert_at, make_gap,
    record, seal, seal_past_grace, verify,
};
use crate::common::{Backend, TestApp};
use patriotpay::audit::anchor;
use patriotpay::audit::verify::Problem;

both_backends!(
    edits_deletions_insertions_and_reorderings_are_caught,
    truncation_and_rewritten_history_are_caught_by_the_checkpoint,
);

/// Twenty sealed events; returns their seqs.
async fn sealed_events(app: &TestApp) -> Vec<i64> {
    for n in 0..20 {
        record(app.db(), "tamper", n).await;
    }
    seal(app, patriotpay::clock::now_unix()).await;
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM audit_events WHERE actor = 'test:tamper' ORDER BY seq")
            .fetch_all(app.db().pool())
            .await
            .expect("seqs");
    assert_eq!(seqs.len(), 20);
    assert_ok(app, "before tampering").await;
    seqs
}

async fn seal_column(app: &TestApp, seq: i64, column: &str) -> String {
    sqlx::query_scalar(&format!("SELECT {column} FROM audit_seals WHERE seq = $1"))
        .bind(seq)
        .fetch_one(app.db().pool())
        .await
        .expect("seal")
}

async fn set_seal_column(app: &TestApp, seq: i64, column: &str, value: &str) {
    sqlx::query(&format!(
        "UPDATE audit_seals SET {column} = $1 WHERE seq = $2"
    ))
    .bind(value)
    .bind(seq)
    .execute(app.db().pool())
    .await
    .expect("edit seal");
}

async fn edits_deletions_insertions_and_reorderings_are_caught(backend: Backend) {
    let app = TestApp::start(backend).await;
    let seqs = sealed_events(&app).await;
    let (a, b) = (seqs[5], seqs[12]);

    // The triggers refuse the application's own credentials first.
    for sql in [
        format!("UPDATE audit_events SET outcome = 'denied' WHERE seq = {a}"),
        format!("DELETE FROM audit_events WHERE seq = {a}"),
        format!("UPDATE audit_seals SET hash = prev_hash WHERE seq = {a}"),
        format!("DELETE FROM audit_seals WHERE seq = {a}"),
    ] {
        assert!(
            sqlx::query(&sql).execute(app.db().pool()).await.is_err(),
            "refused while the triggers stand: {sql}"
        );
    }
    drop_triggers(&app).await;

    // An edited field.
    exec(
        &app,
        &format!("UPDATE audit_events SET outcome = 'denied' WHERE seq = {a}"),
    )
    .await;
    assert_broken(&app, a, Problem::EventEdited, "an edited outcome").await;
    exec(
        &app,
        &format!("UPDATE audit_events SET outcome = 'success' WHERE seq = {a}"),
    )
    .await;
    assert_ok(&app, "outcome restored").await;

    // NULL made empty is an edit too.
    exec(
        &app,
        &format!("UPDATE audit_events SET on_behalf_of = '' WHERE seq = {a}"),
    )
    .await;
    assert_broken(&app, a, Problem::EventEdited, "NULL made empty").await;
    exec(
        &app,
        &format!("UPDATE audit_events SET on_behalf_of = NULL WHERE seq = {a}"),
    )
    .await;
    assert_ok(&app, "NULL restored").await;

    // A deleted event.
    let original = event_at(&app, a).await;
    exec(&app, &format!("DELETE FROM audit_events WHERE seq = {a}")).await;
    assert_broken(&app, a, Problem::EventMissing, "a deleted event").await;
    insert_at(&app, a, &original).await;
    assert_ok(&app, "event put back").await;

    // Two events' contents swapped (each keeps its seq).
    let (ea, eb) = (event_at(&app, a).await, event_at(&app, b).await);
    exec(
        &app,
        &format!("DELETE FROM audit_events WHERE seq IN ({a}, {b})"),
    )
    .await;
    insert_at(&app, a, &eb).await;
    insert_at(&app, b, &ea).await;
    assert_broken(&app, a, Problem::Order, "two events swapped").await;
    exec(
        &app,
        &format!("DELETE FROM audit_events WHERE seq IN ({a}, {b})"),
    )
    .await;
    insert_at(&app, a, &ea).await;
    insert_at(&app, b, &eb).await;
    assert_ok(&app, "order restored").await;

    // An event inserted below the head: the only free seqs there are gaps.
    let gap = make_gap(&app).await;
    seal_past_grace(&app).await;
    let r = assert_ok(&app, "gap sealed").await;
    assert_eq!(r.gaps, 1);
    let mut forged = event_at(&app, a).await;
    forged.id = Some(uuid::Uuid::new_v4().to_string());
    forged.outcome = Some("denied".into());
    insert_at(&app, gap, &forged).await;
    assert_broken(&app, gap, Problem::ExtraEvent, "an inserted event").await;
    exec(&app, &format!("DELETE FROM audit_events WHERE seq = {gap}")).await;
    assert_ok(&app, "inserted event removed").await;

    // A seal's hash changed: the event and the next seal still agree on the true one.
    let hash = seal_column(&app, a, "hash").await;
    set_seal_column(&app, a, "hash", &"ab".repeat(32)).await;
    assert_broken(&app, a, Problem::SealEdited, "an edited seal hash").await;
    set_seal_column(&app, a, "hash", &hash).await;
    // A seal's link to the one before changed.
    let prev = seal_column(&app, b, "prev_hash").await;
    set_seal_column(&app, b, "prev_hash", &"cd".repeat(32)).await;
    assert_broken(&app, b, Problem::SealEdited, "an edited prev_hash").await;
    set_seal_column(&app, b, "prev_hash", &prev).await;
    // An event seal turned into a gap seal.
    set_seal_column(&app, a, "kind", "gap").await;
    assert_broken(&app, a, Problem::SealEdited, "an event seal made a gap").await;
    set_seal_column(&app, a, "kind", "event").await;
    assert_ok(&app, "seals restored").await;

    // A seal removed.
    let row: (i64, String, String, String, i64) = sqlx::query_as(
        "SELECT seq, kind, prev_hash, hash, sealed_at FROM audit_seals WHERE seq = $1",
    )
    .bind(b)
    .fetch_one(app.db().pool())
    .await
    .expect("seal row");
    exec(&app, &format!("DELETE FROM audit_seals WHERE seq = {b}")).await;
    assert_broken(&app, b, Problem::SealMissing, "a removed seal").await;
    sqlx::query(
        "INSERT INTO audit_seals (seq, kind, prev_hash, hash, sealed_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(row.0)
    .bind(row.1)
    .bind(row.2)
    .bind(row.3)
    .bind(row.4)
    .execute(app.db().pool())
    .await
    .expect("seal put back");
    assert_ok(&app, "seal put back").await;
    app.finish().await;
}

async fn truncation_and_rewritten_history_are_caught_by_the_checkpoint(backend: Backend) {
    let app = TestApp::start(backend).await;
    let seqs = sealed_events(&app).await;
    let provider = app.state().crypto.provider().clone();
    let now = patriotpay::clock::now_unix();
    let cp = anchor::append(app.db(), provider.as_ref(), &anchor_file(&app), now)
        .await
        .expect("anchor");
    assert_eq!(cp.seq, *seqs.last().expect("seqs"));
    let r = assert_ok(&app, "anchored").await;
    assert!(r.checkpoints_ok >= 1);
    drop_triggers(&app).await;

    // The newest three events and their seals removed together: the chain left verifies by
    // itself, but ends before the checkpoint.
    let cut = seqs[17];
    let mut tx = app.db().pool().begin().await.expect("begin");
    for table in ["audit_events", "audit_seals"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE seq >= $1"))
            .bind(cut)
            .execute(&mut *tx)
            .await
            .expect("truncate");
    }
    tx.commit().await.expect("commit");
    assert_broken(&app, cut, Problem::Truncated, "the newest events cut off").await;

    // History rewritten as a careful attacker would: an event edited, every seal from it on
    // removed and sealed afresh. The chain is whole again, but not the one anchored.
    let a = seqs[4];
    exec(
        &app,
        &format!("UPDATE audit_events SET outcome = 'denied' WHERE seq = {a}"),
    )
    .await;
    exec(&app, &format!("DELETE FROM audit_seals WHERE seq >= {a}")).await;
    for n in 0..5 {
        record(app.db(), "rewrite", n).await;
    }
    // The seqs cut off above are sealed as gaps, so the new chain reaches past the checkpoint.
    seal_past_grace(&app).await;
    // It shows at the first checkpoint at or after the edit: ours, or one the server made
    // meanwhile (it anchors too, at whatever head it saw first).
    let b = verify(&app).await.broken.expect("rewritten history caught");
    assert_eq!(b.problem, Problem::Checkpoint, "{}", b.detail);
    assert!(
        b.seq.is_some_and(|s| s >= a && s <= cp.seq),
        "at a checkpoint from the edit on: {b}"
    );

    // A checkpoint edited in the anchor file to match: its MAC gives it away.
    let (_, new_hash) = patriotpay::audit::chain::head(app.db())
        .await
        .expect("head");
    let forged = anchor::Checkpoint {
        seq: patriotpay::audit::chain::head(app.db())
            .await
            .expect("head")
            .0,
        hash: hex::encode(new_hash),
        ..cp.clone()
    };
    std::fs::write(
        anchor_file(&app),
        format!("{}\n", serde_json::to_string(&forged).expect("json")),
    )
    .expect("rewrite the anchor file");
    let r = verify(&app).await;
    let b = r.broken.expect("forged checkpoint caught");
    assert_eq!(b.problem, Problem::Checkpoint, "{}", b.detail);
    assert!(b.detail.contains("MAC"), "{}", b.detail);
    app.finish().await;
}
