//! Reconciliation: the processor's truth about a window compared with the ledger, from both
//! sides. From ours: our checkouts without a payment, and our payments (status, amount,
//! refunds). From the processor's: every payment, refund and dispute it made in the window, so
//! money taken for a checkout of ours that no event reported (an off-session charge whose
//! booking never happened, a lost webhook) is found though our records hold no trace of it.
//! What is missing is booked through the same code the webhook uses (audited as a repair by
//! `system:reconcile`); what differs and cannot be repaired is flagged for a person. Run by
//! `patriotpay payments reconcile` and daily by the server.

use super::booking::{self, RECONCILE_ACTOR};
use super::events::{self, ident, EventOutcome};
use super::{
    payment_if_known, PaymentError, PaymentProcessor, PaymentStatus, ProcessorDispute,
    ProcessorError, ProcessorPayment, ProcessorRefund, RefundStatus,
};
use crate::alerts::AlertSink;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::group_commit::GroupWriter;
use crate::ids::TenantId;
use std::collections::HashSet;

/// Unix seconds, `since` inclusive, `until` exclusive.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

/// One thing reconciliation found. Details name processor ids, our ids and amounts, never a
/// patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Booked or moved (or, in a dry run, would be): the processor's truth now on the ledger.
    pub repaired: bool,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Our checkouts in the window with a processor session and no payment.
    pub checkouts_checked: usize,
    /// Our payments in the window.
    pub payments_checked: usize,
    /// The processor's payments, refunds and disputes created in the window.
    pub processor_payments_checked: usize,
    pub processor_refunds_checked: usize,
    pub processor_disputes_checked: usize,
    pub findings: Vec<Finding>,
    pub dry_run: bool,
}

impl Report {
    /// Differences a person must look at.
    pub fn flagged(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.repaired)
    }

    fn repair(&mut self, kind: &'static str, detail: String) {
        self.findings.push(Finding {
            repaired: true,
            kind,
            detail,
        });
    }

    fn flag(&mut self, kind: &'static str, detail: String) {
        self.findings.push(Finding {
            repaired: false,
            kind,
            detail,
        });
    }
}

/// Progress for a long run: called with (done, total) as our checkouts and payments, then the
/// processor's payments, refunds and disputes, are checked.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// What one run has seen so far, so each thing found is reported (and repaired) once whichever
/// side found it first.
#[derive(Default)]
struct Seen {
    /// Processor payments our checkouts walk looked at (booked, refused, or in a dry run not).
    payments: HashSet<String>,
    /// Processor payments whose refunds our payments walk compared.
    refunds_of: HashSet<String>,
    /// In a dry run, processor payments reported as "would be booked": their refunds and
    /// disputes are reported as a real run would find them once they are booked.
    would_book: HashSet<String>,
}

/// One run's state: the report, what was seen, and progress.
struct Pass<'a> {
    db: &'a Db,
    group: &'a GroupWriter,
    processor: &'a dyn PaymentProcessor,
    dry_run: bool,
    now: i64,
    report: Report,
    seen: Seen,
    done: u64,
    total: u64,
    progress: Progress<'a>,
}

impl Pass<'_> {
    fn tick(&mut self) {
        self.done += 1;
        (self.progress)(self.done, self.total);
    }
}

/// The processor's own listing of the window.
struct Theirs {
    payments: Vec<ProcessorPayment>,
    refunds: Vec<ProcessorRefund>,
    disputes: Vec<ProcessorDispute>,
}

/// Reconciles the window. With `dry_run`, reports what it would repair and changes nothing
/// (and raises no alert). A dispute it records raises the practice's alert, as the webhook's
/// would have.
// The run's dependencies and window, each a different kind; a struct for them would be used once.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    window: Window,
    dry_run: bool,
    now: i64,
    progress: Progress<'_>,
) -> Result<Report, PaymentError> {
    // Checkouts with a processor session and no payment on our books: a payment the webhook
    // never delivered (or a crash between the processor's charge and our write) shows here.
    let checkouts: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.id, c.tenant_id, c.processor_session_id FROM checkouts c
         WHERE c.created_at >= $1 AND c.created_at < $2 AND c.processor_session_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.checkout_id = c.id)
         ORDER BY c.created_at, c.id",
    )
    .bind(window.since)
    .bind(window.until)
    .fetch_all(db.pool())
    .await?;
    let payments: Vec<OurPayment> = sqlx::query_as(
        "SELECT id, tenant_id, processor_payment_id, status, amount_cents FROM payments
         WHERE paid_at >= $1 AND paid_at < $2 ORDER BY paid_at, id",
    )
    .bind(window.since)
    .bind(window.until)
    .fetch_all(db.pool())
    .await?;
    let theirs = Theirs {
        payments: processor.list_payments(window.since, window.until).await?,
        refunds: processor
            .list_refunds_between(window.since, window.until)
            .await?,
        disputes: processor.list_disputes(window.since, window.until).await?,
    };
    let total = checkouts.len()
        + payments.len()
        + theirs.payments.len()
        + theirs.refunds.len()
        + theirs.disputes.len();
    let mut pass = Pass {
        db,
        group,
        processor,
        dry_run,
        now,
        report: Report {
            dry_run,
            ..Report::default()
        },
        seen: Seen::default(),
        done: 0,
        total: u64::try_from(total).unwrap_or(u64::MAX),
        progress,
    };
    // Ours first, then the processor's for what ours cannot see.
    for (ours, tenant, session_id) in &checkouts {
        pass.our_checkout(ours, tenant, session_id).await?;
    }
    for p in &payments {
        pass.our_payment(p).await?;
    }
    for p in &theirs.payments {
        pass.their_payment(p).await?;
    }
    pass.their_refunds(&theirs.refunds).await?;
    for d in &theirs.disputes {
        pass.their_dispute(d, alerts).await?;
    }
    let mut report = pass.report;
    // Refunds an admin asked for whose processor call never answered (any window: they are
    // ours and few).
    let resumed = super::refunds::resume_requested(db, processor, now, dry_run).await?;
    if resumed > 0 {
        let verb = if dry_run {
            "would be asked for again"
        } else {
            "asked for again"
        };
        report.repair(
            "refund-resumed",
            format!("{resumed} refund(s) left requested without the processor's answer: {verb}"),
        );
    }
    Ok(report)
}

/// One of our payments: id, tenant, the processor's id, status, amount in cents.
type OurPayment = (String, String, String, String, i64);

/// Whether a processor payment took money (or is taking it: a bank debit on its way).
fn takes_money(p: &ProcessorPayment) -> bool {
    p.succeeded() && p.amount_received.is_positive() || p.status == PaymentStatus::Processing
}

impl Pass<'_> {
    /// One of our checkouts without a payment: booked if the processor's session took money.
    async fn our_checkout(
        &mut self,
        ours: &str,
        tenant: &str,
        session_id: &str,
    ) -> Result<(), PaymentError> {
        self.report.checkouts_checked += 1;
        self.tick();
        let session = match self.processor.retrieve_checkout(session_id).await {
            Ok(s) => s,
            Err(ProcessorError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let payment = match &session.payment_intent {
            Some(pi) => payment_if_known(self.processor, pi).await?,
            None => None,
        };
        let Some(p) = payment else { return Ok(()) };
        self.seen.payments.insert(p.id.clone());
        if !takes_money(&p) {
            return Ok(());
        }
        let what = format!(
            "processor payment {} ({} cents, {}) for our checkout {ours} was not on the ledger",
            ident(&p.id),
            p.amount.cents(),
            status_word(p.status)
        );
        if self.dry_run {
            self.seen.would_book.insert(p.id.clone());
            self.report
                .repair("payment-booked", format!("{what}: would be booked"));
            return Ok(());
        }
        match events::apply_session(
            self.db,
            self.group,
            &session,
            Some(&p),
            self.now,
            RECONCILE_ACTOR,
        )
        .await?
        {
            EventOutcome::Recorded => {
                let tenant = TenantId::from_db(tenant.to_owned());
                record_repair(self.db, &tenant, ours, self.now).await?;
                self.report
                    .repair("payment-booked", format!("{what}: booked"));
            }
            EventOutcome::NotBooked(why) => self.report.flag(why.kind, why.detail),
            _ => {}
        }
        Ok(())
    }

    /// One of our payments: followed if a bank debit settled, flagged if it differs, and its
    /// refunds at the processor that our ledger lacks booked.
    async fn our_payment(&mut self, row: &OurPayment) -> Result<(), PaymentError> {
        let (ours, tenant, pi, status, cents) = row;
        let (db, now, dry_run) = (self.db, self.now, self.dry_run);
        self.report.payments_checked += 1;
        self.tick();
        let Some(p) = payment_if_known(self.processor, pi).await? else {
            self.report.flag(
                "payment-unknown-to-processor",
                format!("our payment {ours} names processor payment {} which the processor does not know", ident(pi)),
            );
            return Ok(());
        };
        let tenant = TenantId::from_db(tenant.clone());
        match (status.as_str(), p.status) {
            (
                "processing",
                PaymentStatus::Succeeded | PaymentStatus::Incomplete | PaymentStatus::Canceled,
            ) => {
                let verb = if p.succeeded() { "settled" } else { "reversed" };
                let what = format!(
                    "bank debit {} (our payment {ours}) {verb} at the processor",
                    ident(pi)
                );
                if dry_run {
                    self.report
                        .repair("bank-debit-followed", format!("{what}: would follow"));
                } else if booking::follow(db, &p, now, RECONCILE_ACTOR).await?
                    != EventOutcome::NoChange
                {
                    record_repair(db, &tenant, ours, now).await?;
                    self.report
                        .repair("bank-debit-followed", format!("{what}: followed"));
                }
            }
            ("succeeded", s) if s != PaymentStatus::Succeeded => self.report.flag(
                "payment-status-differs",
                format!(
                    "our payment {ours} is succeeded but processor payment {} is {}",
                    ident(pi),
                    status_word(s)
                ),
            ),
            _ => {}
        }
        let theirs = if p.succeeded() {
            p.amount_received
        } else {
            p.amount
        };
        if theirs.cents() != *cents && status != "failed" {
            self.report.flag(
                "payment-amount-differs",
                format!(
                    "our payment {ours} is {cents} cents but processor payment {} is {} cents",
                    ident(pi),
                    theirs.cents()
                ),
            );
        }
        // Refunds the processor made that our ledger lacks (a lost event, a dashboard refund).
        self.seen.refunds_of.insert(pi.clone());
        let refunds = match self.processor.list_refunds(pi).await {
            Ok(r) => r,
            Err(ProcessorError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut missing = 0;
        for r in &refunds {
            if r.status == RefundStatus::Succeeded && !refund_booked(db, &r.id).await? {
                missing += 1;
            }
        }
        if missing == 0 {
            return Ok(());
        }
        let what = format!(
            "{missing} refund(s) of processor payment {} (our payment {ours}) were not on the ledger",
            ident(pi)
        );
        if dry_run {
            self.report
                .repair("refund-booked", format!("{what}: would be booked"));
        } else {
            super::refunds::sync(db, self.processor, pi, now).await?;
            record_repair(db, &tenant, ours, now).await?;
            self.report
                .repair("refund-booked", format!("{what}: booked"));
        }
        Ok(())
    }

    /// A payment the processor made in the window: if it took money and is not on our books,
    /// booked when its metadata names a checkout of ours, flagged otherwise.
    async fn their_payment(&mut self, p: &ProcessorPayment) -> Result<(), PaymentError> {
        self.report.processor_payments_checked += 1;
        self.tick();
        if !takes_money(p)
            || self.seen.payments.contains(&p.id)
            || booking::is_booked(self.db, &p.id).await?
        {
            return Ok(());
        }
        let Some(checkout) = events::checkout_named_by(self.db, p).await? else {
            let named = match p.checkout_ref.as_deref() {
                Some(r) => format!("names checkout {}, which we have no record of", ident(r)),
                None => "names no checkout of ours".to_owned(),
            };
            self.report.flag(
                "payment-unknown-to-ledger",
                format!(
                    "processor payment {} ({} cents {}, {}) is on no ledger of ours: it {named}",
                    ident(&p.id),
                    p.amount.cents(),
                    ident(&p.currency),
                    status_word(p.status)
                ),
            );
            return Ok(());
        };
        let what = format!(
            "processor payment {} ({} cents, {}) for our checkout {} was not on the ledger",
            ident(&p.id),
            p.amount.cents(),
            status_word(p.status),
            checkout.id
        );
        if self.dry_run {
            self.seen.would_book.insert(p.id.clone());
            self.report
                .repair("payment-booked", format!("{what}: would be booked"));
            return Ok(());
        }
        match events::book_payment(self.db, self.group, &checkout, p, self.now, RECONCILE_ACTOR)
            .await?
        {
            EventOutcome::Recorded => {
                record_repair(self.db, &checkout.tenant_id, checkout.id.as_str(), self.now).await?;
                self.report
                    .repair("payment-booked", format!("{what}: booked"));
            }
            EventOutcome::NotBooked(why) => self.report.flag(why.kind, why.detail),
            _ => {}
        }
        Ok(())
    }

    /// Refunds the processor made in the window, of payments on our books, that our ledger
    /// lacks (those of payments our own walk compared are done): each payment's synced once.
    async fn their_refunds(&mut self, refunds: &[ProcessorRefund]) -> Result<(), PaymentError> {
        let mut missing: Vec<(String, usize)> = Vec::new();
        for r in refunds {
            self.report.processor_refunds_checked += 1;
            self.tick();
            if r.status != RefundStatus::Succeeded
                || self.seen.refunds_of.contains(&r.payment)
                || refund_booked(self.db, &r.id).await?
            {
                continue;
            }
            match missing.iter_mut().find(|(p, _)| *p == r.payment) {
                Some((_, n)) => *n += 1,
                None => missing.push((r.payment.clone(), 1)),
            }
        }
        for (pi, n) in missing {
            let refunds = format!("{n} refund(s) of processor payment {}", ident(&pi));
            let Some((ours, tenant)) = our_payment_of(self.db, &pi).await? else {
                // Not on our books: the payment is reported (or, in a dry run, would be booked).
                if self.seen.would_book.contains(&pi) {
                    self.report.repair(
                        "refund-booked",
                        format!("{refunds} (to be booked) were not on the ledger: would be booked"),
                    );
                }
                continue;
            };
            let what = format!("{refunds} (our payment {ours}) were not on the ledger");
            if self.dry_run {
                self.report
                    .repair("refund-booked", format!("{what}: would be booked"));
                continue;
            }
            if let EventOutcome::Refunded(_) =
                super::refunds::sync(self.db, self.processor, &pi, self.now).await?
            {
                record_repair(self.db, &tenant, &ours, self.now).await?;
                self.report
                    .repair("refund-booked", format!("{what}: booked"));
            }
        }
        Ok(())
    }

    /// A dispute the processor opened in the window: recorded if it is on a payment of ours and
    /// we have not recorded it (the practice alerted, as by the webhook), its status brought up
    /// to date if it moved; flagged if its payment is on no ledger of ours.
    async fn their_dispute(
        &mut self,
        d: &ProcessorDispute,
        alerts: &AlertSink,
    ) -> Result<(), PaymentError> {
        self.report.processor_disputes_checked += 1;
        self.tick();
        let (db, now) = (self.db, self.now);
        let on = format!(
            "processor dispute {} ({}, {} cents) on processor payment {}",
            ident(&d.id),
            ident(&d.reason),
            d.amount.cents(),
            ident(&d.payment)
        );
        let Some((ours, tenant)) = our_payment_of(db, &d.payment).await? else {
            if self.seen.would_book.contains(&d.payment) {
                self.report.repair(
                    "dispute-recorded",
                    format!("{on} (to be booked) was not recorded: would be recorded"),
                );
            } else {
                self.report.flag(
                    "dispute-unknown-to-ledger",
                    format!(
                        "{on}, which is on no ledger of ours; respond in the processor's dashboard"
                    ),
                );
            }
            return Ok(());
        };
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT status FROM disputes WHERE processor_dispute_id = $1")
                .bind(&d.id)
                .fetch_optional(db.pool())
                .await?;
        let (kind, what) = match recorded {
            None => (
                "dispute-recorded",
                format!("{on} (our payment {ours}) was not recorded"),
            ),
            Some(was) if was != d.status => (
                "dispute-updated",
                format!(
                    "{on} (our payment {ours}) is {} where we recorded {}",
                    ident(&d.status),
                    ident(&was)
                ),
            ),
            Some(_) => return Ok(()),
        };
        if self.dry_run {
            let verb = if kind == "dispute-recorded" {
                "would be recorded"
            } else {
                "would be updated"
            };
            self.report.repair(kind, format!("{what}: {verb}"));
            return Ok(());
        }
        match booking::record_dispute(db, d, now, RECONCILE_ACTOR).await? {
            EventOutcome::Disputed(why) => {
                why.raise(db, alerts, now).await?;
                record_repair(db, &tenant, &ours, now).await?;
                self.report
                    .repair(kind, format!("{what}: recorded; the practice is alerted"));
            }
            // The webhook recorded it meanwhile; an update is no news to alert on.
            _ if kind == "dispute-updated" => {
                record_repair(db, &tenant, &ours, now).await?;
                self.report.repair(kind, format!("{what}: updated"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether our ledger has processor refund `id` as succeeded.
async fn refund_booked(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM refunds WHERE processor_refund_id = $1 AND status = 'succeeded'",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

/// Our payment (id, tenant) of a processor payment, if it is on our books.
async fn our_payment_of(
    db: &Db,
    processor_payment: &str,
) -> Result<Option<(String, TenantId)>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM payments WHERE processor_payment_id = $1")
            .bind(processor_payment)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(id, tenant)| (id, TenantId::from_db(tenant))))
}

/// Runs the window and alerts on what it found: repairs (a webhook was missed) and
/// differences (a person must look), each once.
pub async fn run_and_alert(
    db: &Db,
    group: &GroupWriter,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    window: Window,
    now: i64,
) -> Result<Report, PaymentError> {
    let report = run(db, group, processor, alerts, window, false, now, &|_, _| {}).await?;
    for f in &report.findings {
        let kind = if f.repaired {
            "payment-reconcile-repair"
        } else {
            "payment-reconcile-difference"
        };
        alerts
            .raise_once(db, None, kind, &format!("{}: {}", f.kind, f.detail), now)
            .await?;
    }
    Ok(report)
}

async fn record_repair(
    db: &Db,
    tenant: &TenantId,
    resource: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let actor = Actor {
        at: Some(now),
        ..Actor::system(RECONCILE_ACTOR)
    };
    audit::record(
        db.pool(),
        audit::Event {
            actor: &actor,
            tenant: Some(tenant),
            patient: None,
            action: "payment.reconcile.repair",
            resource: Some(resource),
            outcome: Outcome::Success,
        },
    )
    .await
}

fn status_word(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Processing => "processing",
        PaymentStatus::Incomplete => "not paid",
        PaymentStatus::Canceled => "canceled",
    }
}
