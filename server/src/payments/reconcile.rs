//! Reconciliation: the processor's truth about a window of our checkouts and payments compared
//! with the ledger. What is missing is booked through the same code the webhook uses (audited
//! as a repair by `system:reconcile`); what differs and cannot be repaired is flagged for a
//! person. Run by `patriotpay payments reconcile` and daily by the server.

use super::booking::{self, RECONCILE_ACTOR};
use super::events::{self, ident, EventOutcome};
use super::{
    payment_if_known, PaymentError, PaymentProcessor, PaymentStatus, ProcessorError, RefundStatus,
};
use crate::alerts::AlertSink;
use crate::audit::{self, Actor, Outcome};
use crate::db::Db;
use crate::ids::TenantId;

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
    pub checkouts_checked: usize,
    pub payments_checked: usize,
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

/// Progress for a long run: called with (done, total) as checkouts and payments are checked.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Reconciles the window. With `dry_run`, reports what it would repair and changes nothing.
pub async fn run(
    db: &Db,
    processor: &dyn PaymentProcessor,
    window: Window,
    dry_run: bool,
    now: i64,
    progress: Progress<'_>,
) -> Result<Report, PaymentError> {
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
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
    let payments: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, tenant_id, processor_payment_id, status, amount_cents FROM payments
         WHERE paid_at >= $1 AND paid_at < $2 ORDER BY paid_at, id",
    )
    .bind(window.since)
    .bind(window.until)
    .fetch_all(db.pool())
    .await?;
    let total = u64::try_from(checkouts.len() + payments.len()).unwrap_or(u64::MAX);
    let mut done = 0u64;

    for (ours, tenant, session_id) in &checkouts {
        report.checkouts_checked += 1;
        done += 1;
        progress(done, total);
        let session = match processor.retrieve_checkout(session_id).await {
            Ok(s) => s,
            Err(ProcessorError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let payment = match &session.payment_intent {
            Some(pi) => payment_if_known(processor, pi).await?,
            None => None,
        };
        let Some(p) = payment else { continue };
        let takes_money = p.succeeded() && p.amount_received.is_positive()
            || p.status == PaymentStatus::Processing;
        if !takes_money {
            continue;
        }
        let what = format!(
            "processor payment {} ({} cents, {}) for our checkout {ours} was not on the ledger",
            ident(&p.id),
            p.amount.cents(),
            status_word(p.status)
        );
        if dry_run {
            report.repair("payment-booked", format!("{what}: would be booked"));
            continue;
        }
        match events::apply_session(db, &session, Some(&p), now, RECONCILE_ACTOR).await? {
            EventOutcome::Recorded => {
                record_repair(db, &TenantId::from_db(tenant.clone()), ours, now).await?;
                report.repair("payment-booked", format!("{what}: booked"));
            }
            EventOutcome::NotBooked(why) => report.flag(why.kind, why.detail),
            _ => {}
        }
    }

    for (ours, tenant, pi, status, cents) in &payments {
        report.payments_checked += 1;
        done += 1;
        progress(done, total);
        let Some(p) = payment_if_known(processor, pi).await? else {
            report.flag(
                "payment-unknown-to-processor",
                format!("our payment {ours} names processor payment {} which the processor does not know", ident(pi)),
            );
            continue;
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
                    report.repair("bank-debit-followed", format!("{what}: would follow"));
                } else if booking::follow(db, &p, now, RECONCILE_ACTOR).await?
                    != EventOutcome::NoChange
                {
                    record_repair(db, &tenant, ours, now).await?;
                    report.repair("bank-debit-followed", format!("{what}: followed"));
                }
            }
            ("succeeded", s) if s != PaymentStatus::Succeeded => report.flag(
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
            report.flag(
                "payment-amount-differs",
                format!(
                    "our payment {ours} is {cents} cents but processor payment {} is {} cents",
                    ident(pi),
                    theirs.cents()
                ),
            );
        }
        // Refunds the processor made that our ledger lacks (a lost event, a dashboard refund).
        let refunds = match processor.list_refunds(pi).await {
            Ok(r) => r,
            Err(ProcessorError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let booked: Vec<String> = sqlx::query_scalar(
            "SELECT processor_refund_id FROM refunds WHERE payment_id = $1 AND status = 'succeeded'
               AND processor_refund_id IS NOT NULL",
        )
        .bind(ours)
        .fetch_all(db.pool())
        .await?;
        let missing: Vec<_> = refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded && !booked.contains(&r.id))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let what = format!(
            "{} refund(s) of processor payment {} (our payment {ours}) were not on the ledger",
            missing.len(),
            ident(pi)
        );
        if dry_run {
            report.repair("refund-booked", format!("{what}: would be booked"));
        } else {
            super::refunds::sync(db, processor, pi, now).await?;
            record_repair(db, &tenant, ours, now).await?;
            report.repair("refund-booked", format!("{what}: booked"));
        }
    }
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

/// Runs the window and alerts on what it found: repairs (a webhook was missed) and
/// differences (a person must look), each once.
pub async fn run_and_alert(
    db: &Db,
    processor: &dyn PaymentProcessor,
    alerts: &AlertSink,
    window: Window,
    now: i64,
) -> Result<Report, PaymentError> {
    let report = run(db, processor, window, false, now, &|_, _| {}).await?;
    for f in &report.findings {
        let kind = if f.repaired {
            "payment-reconcile-repair"
        } else {
            "payment-reconcile-difference"
        };
        alerts
            .raise_once(db, kind, &format!("{}: {}", f.kind, f.detail), now)
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
