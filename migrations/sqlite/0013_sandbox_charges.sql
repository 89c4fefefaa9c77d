-- The sandbox charges saved cards with the member away (off-session), as payment plans do, and
-- lists its payments, refunds and disputes over a window for reconciliation.
-- Keep in step with ../postgres/0013_sandbox_charges.sql.

-- How a saved card behaves when charged later, decided by the test number it was saved with
-- (never the number itself): 'succeeds', 'authentication_required' (the bank wants the member
-- present), 'declined', 'insufficient_funds'. Cards saved before this were all of the first kind.
ALTER TABLE sandbox_payment_methods ADD COLUMN behaviour TEXT NOT NULL DEFAULT 'succeeds'
    CHECK (behaviour IN ('succeeds', 'authentication_required', 'declined', 'insufficient_funds'));

-- A payment is now made by a hosted checkout (session_id) or by an off-session charge of a
-- saved card (customer_id, payment_method_id, idempotency_key; no checkout, so session_id is
-- NULL). An off-session charge whose bank wants the member present waits as
-- 'requires_action', as a PaymentIntent does. checkout_ref is our checkout id, as the payment's
-- metadata carries it: the session's client_reference_id for a hosted payment, the charge's own
-- for an off-session one; statement_ref is the charge's statement ids. SQLite cannot relax a
-- NOT NULL or widen a CHECK in place, so the table (a leaf: nothing references it) is rebuilt,
-- its rows kept and each hosted payment given its session's reference.
CREATE TABLE sandbox_payments_new (
    id TEXT PRIMARY KEY,
    session_id TEXT,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'processing', 'failed', 'requires_action')),
    method TEXT NOT NULL CHECK (method IN ('card', 'us_bank_account')),
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_error TEXT CHECK (last_error IN ('generic', 'insufficient_funds')),
    settles_at BIGINT,
    settle_to TEXT CHECK (settle_to IN ('succeeded', 'failed')),
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    dispute_id TEXT,
    checkout_ref TEXT,
    statement_ref TEXT,
    customer_id TEXT,
    payment_method_id TEXT,
    idempotency_key TEXT UNIQUE,
    CHECK (session_id IS NOT NULL OR idempotency_key IS NOT NULL)
);
INSERT INTO sandbox_payments_new (id, session_id, amount_cents, currency, status, method, brand,
        last4, created, last_error, settles_at, settle_to, amount_refunded, dispute_id,
        checkout_ref)
    SELECT p.id, p.session_id, p.amount_cents, p.currency, p.status, p.method, p.brand, p.last4,
        p.created, p.last_error, p.settles_at, p.settle_to, p.amount_refunded, p.dispute_id,
        (SELECT s.client_reference_id FROM sandbox_sessions s WHERE s.id = p.session_id)
    FROM sandbox_payments p;
DROP TABLE sandbox_payments;
ALTER TABLE sandbox_payments_new RENAME TO sandbox_payments;
CREATE INDEX sandbox_payments_settling ON sandbox_payments(status, settles_at);

-- Reconciliation lists each kind over a window of creation times.
CREATE INDEX sandbox_payments_created ON sandbox_payments(created);
CREATE INDEX sandbox_refunds_created ON sandbox_refunds(created);
CREATE INDEX sandbox_disputes_created ON sandbox_disputes(created);
