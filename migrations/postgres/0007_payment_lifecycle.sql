-- The payment lifecycle after checkout: bank debits that settle days later, refunds, disputes,
-- and processor events worked through a durable job table. Keep in step with
-- ../sqlite/0007_payment_lifecycle.sql.

-- A bank debit (ACH) is booked when its checkout completes, as 'processing'; the balance counts
-- it (the patient is not asked to pay twice) and a failure books a reversal.
ALTER TABLE payments ADD COLUMN status TEXT NOT NULL DEFAULT 'succeeded'
    CHECK (status IN ('processing', 'succeeded', 'failed'));
ALTER TABLE payments ADD COLUMN method TEXT NOT NULL DEFAULT 'card'
    CHECK (method IN ('card', 'us_bank_account'));
ALTER TABLE payments ADD COLUMN settled_at BIGINT;

-- Refunds a practice admin issued. The idempotency key is saved before the processor is called;
-- the ledger gets the refund once the processor says it succeeded.
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    payment_id TEXT NOT NULL REFERENCES payments(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL CHECK (reason IN ('duplicate', 'requested_by_customer', 'billing_error', 'overpayment', 'made_at_processor')),
    idempotency_key TEXT NOT NULL UNIQUE,
    processor_refund_id TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('requested', 'pending', 'succeeded', 'failed')),
    requested_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    settled_at BIGINT
);
CREATE INDEX refunds_payment ON refunds(payment_id);

-- Disputes (chargebacks) the processor reported: the payment is flagged for staff and an alert
-- raised; a disputed payment cannot be refunded.
CREATE TABLE disputes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    payment_id TEXT NOT NULL REFERENCES payments(id),
    processor_dispute_id TEXT NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX disputes_payment ON disputes(payment_id);

-- Refunds and reversals raise a statement's balance again; each names what it undoes.
ALTER TABLE ledger_entries ADD COLUMN refund_id TEXT REFERENCES refunds(id);
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_check;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_payment_statement;
ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('charge', 'payment', 'refund', 'reversal')),
    ADD CONSTRAINT ledger_entries_check CHECK (
        (kind = 'charge' AND line_id IS NOT NULL AND payment_id IS NULL AND refund_id IS NULL)
        OR (kind IN ('payment', 'reversal') AND payment_id IS NOT NULL AND line_id IS NULL AND refund_id IS NULL)
        OR (kind = 'refund' AND refund_id IS NOT NULL AND payment_id IS NOT NULL AND line_id IS NULL));
CREATE INDEX ledger_payment ON ledger_entries(payment_id);
-- Each payment is booked, and reversed, at most once per statement; each refund once.
CREATE UNIQUE INDEX ledger_one_payment ON ledger_entries(payment_id, statement_id) WHERE kind = 'payment';
CREATE UNIQUE INDEX ledger_one_reversal ON ledger_entries(payment_id, statement_id) WHERE kind = 'reversal';
CREATE UNIQUE INDEX ledger_one_refund ON ledger_entries(refund_id, statement_id) WHERE kind = 'refund';

-- Processor events are a durable job queue: the webhook stores a verified event and answers at
-- once; workers claim due jobs (a lease, so two workers never hold one), re-fetch the object and
-- book it, retrying with backoff until 'done' or, after the last attempt, 'dead' (alerted).
-- Events stored before this migration were handled when they arrived.
ALTER TABLE processor_events
    ADD COLUMN state TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('pending', 'done', 'dead')),
    ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN run_after BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN lease_until BIGINT,
    ADD COLUMN last_error TEXT,
    ADD COLUMN outcome TEXT,
    ADD COLUMN done_at BIGINT,
    ADD COLUMN related_id TEXT;
CREATE INDEX processor_events_due ON processor_events(state, run_after);

-- A practice that takes bank debits (ACH) offers them in checkout beside cards and wallets.
ALTER TABLE tenants ADD COLUMN bank_debit BIGINT NOT NULL DEFAULT 0;
