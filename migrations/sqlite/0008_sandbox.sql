-- The built-in sandbox processor's own objects, so a restart loses neither open checkouts nor
-- undelivered events. Only the sandbox reads or writes these tables; the portal's records are
-- elsewhere. Nothing of a card or bank account is kept but its brand (or bank) and last four
-- digits. Keep in step with ../postgres/0008_sandbox.sql.

CREATE TABLE sandbox_sessions (
    id TEXT PRIMARY KEY,
    amount_cents BIGINT NOT NULL,
    client_reference_id TEXT NOT NULL,
    success_url TEXT NOT NULL,
    cancel_url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
    paid BIGINT NOT NULL DEFAULT 0,
    payment_intent TEXT,
    csrf TEXT NOT NULL,
    bank_debit BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- How a test asked the sandbox to misbehave on this checkout ('charge' or
    -- 'fail_after_completing'), and for 'charge' what it charges instead.
    misreport TEXT,
    misreport_amount_cents BIGINT,
    misreport_currency TEXT
);

CREATE TABLE sandbox_idempotency (
    idempotency_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);

-- One payment (PaymentIntent) per checkout. A bank debit is 'processing' until it settles, at
-- or after settles_at, as settle_to says (decided by the test account number when paid).
CREATE TABLE sandbox_payments (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'processing', 'failed')),
    method TEXT NOT NULL CHECK (method IN ('card', 'us_bank_account')),
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_error TEXT CHECK (last_error IN ('generic', 'insufficient_funds')),
    settles_at BIGINT,
    settle_to TEXT CHECK (settle_to IN ('succeeded', 'failed')),
    -- Refunds not failed, summed: a guarded update keeps it within amount_cents.
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    dispute_id TEXT
);
CREATE INDEX sandbox_payments_settling ON sandbox_payments(status, settles_at);

CREATE TABLE sandbox_refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded')),
    refund_ref TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    -- A refund of a bank debit is pending until then.
    settles_at BIGINT
);
CREATE INDEX sandbox_refunds_payment ON sandbox_refunds(payment_id);

CREATE TABLE sandbox_disputes (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- The outbox: each event is written in the transaction of the change it reports and delivered
-- from here, retried with backoff until delivered or a day old (then next_attempt_at is NULL).
CREATE TABLE sandbox_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    delivered_at BIGINT
);
CREATE INDEX sandbox_events_due ON sandbox_events(delivered_at, next_attempt_at);
