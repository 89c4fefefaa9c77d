-- The payment lifecycle after checkout: bank debits that settle days later, refunds, disputes,
-- and processor events worked through a durable job table. Keep in step with
-- ../postgres/0007_payment_lifecycle.sql.

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

-- Refunds and reversals raise a statement's balance again; each names what it undoes. The ledger
-- is a leaf table, so SQLite rebuilds it in place to widen the kind check.
CREATE TEMP TABLE old_ledger AS SELECT * FROM ledger_entries;
DROP TABLE ledger_entries;
CREATE TABLE ledger_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'payment', 'refund', 'reversal')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    line_id TEXT UNIQUE REFERENCES statement_lines(id),
    payment_id TEXT REFERENCES payments(id),
    refund_id TEXT REFERENCES refunds(id),
    created_at BIGINT NOT NULL,
    CHECK ((kind = 'charge' AND line_id IS NOT NULL AND payment_id IS NULL AND refund_id IS NULL)
        OR (kind IN ('payment', 'reversal') AND payment_id IS NOT NULL AND line_id IS NULL AND refund_id IS NULL)
        OR (kind = 'refund' AND refund_id IS NOT NULL AND payment_id IS NOT NULL AND line_id IS NULL))
);
INSERT INTO ledger_entries (id, tenant_id, statement_id, kind, amount_cents, line_id, payment_id, created_at)
    SELECT id, tenant_id, statement_id, kind, amount_cents, line_id, payment_id, created_at FROM old_ledger;
DROP TABLE old_ledger;
CREATE INDEX ledger_statement ON ledger_entries(statement_id);
CREATE INDEX ledger_payment ON ledger_entries(payment_id);
-- Each payment is booked, and reversed, at most once per statement; each refund once.
CREATE UNIQUE INDEX ledger_one_payment ON ledger_entries(payment_id, statement_id) WHERE kind = 'payment';
CREATE UNIQUE INDEX ledger_one_reversal ON ledger_entries(payment_id, statement_id) WHERE kind = 'reversal';
CREATE UNIQUE INDEX ledger_one_refund ON ledger_entries(refund_id, statement_id) WHERE kind = 'refund';

-- Processor events are a durable job queue: the webhook stores a verified event and answers at
-- once; workers claim due jobs (a lease, so two workers never hold one), re-fetch the object and
-- book it, retrying with backoff until 'done' or, after the last attempt, 'dead' (alerted).
-- Events stored before this migration were handled when they arrived.
ALTER TABLE processor_events ADD COLUMN state TEXT NOT NULL DEFAULT 'done'
    CHECK (state IN ('pending', 'done', 'dead'));
ALTER TABLE processor_events ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE processor_events ADD COLUMN run_after BIGINT NOT NULL DEFAULT 0;
ALTER TABLE processor_events ADD COLUMN lease_until BIGINT;
ALTER TABLE processor_events ADD COLUMN last_error TEXT;
ALTER TABLE processor_events ADD COLUMN outcome TEXT;
ALTER TABLE processor_events ADD COLUMN done_at BIGINT;
-- The event's own `payment_intent` (charges and disputes name it), only a key to re-fetch by.
ALTER TABLE processor_events ADD COLUMN related_id TEXT;
CREATE INDEX processor_events_due ON processor_events(state, run_after);

-- A practice that takes bank debits (ACH) offers them in checkout beside cards and wallets.
ALTER TABLE tenants ADD COLUMN bank_debit BIGINT NOT NULL DEFAULT 0;
