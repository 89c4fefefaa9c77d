-- The sandbox charges saved cards with the member away (off-session), as payment plans do, and
-- lists its payments, refunds and disputes over a window for reconciliation.
-- Keep in step with ../sqlite/0013_sandbox_charges.sql.

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
-- for an off-session one; statement_ref is the charge's statement ids. (SQLite rebuilds the
-- table for this; here it is altered in place.)
ALTER TABLE sandbox_payments ALTER COLUMN session_id DROP NOT NULL;
ALTER TABLE sandbox_payments DROP CONSTRAINT sandbox_payments_status_check;
ALTER TABLE sandbox_payments ADD CONSTRAINT sandbox_payments_status_check
    CHECK (status IN ('succeeded', 'processing', 'failed', 'requires_action'));
ALTER TABLE sandbox_payments ADD COLUMN checkout_ref TEXT;
ALTER TABLE sandbox_payments ADD COLUMN statement_ref TEXT;
ALTER TABLE sandbox_payments ADD COLUMN customer_id TEXT;
ALTER TABLE sandbox_payments ADD COLUMN payment_method_id TEXT;
ALTER TABLE sandbox_payments ADD COLUMN idempotency_key TEXT UNIQUE;
ALTER TABLE sandbox_payments ADD CONSTRAINT sandbox_payments_made_by
    CHECK (session_id IS NOT NULL OR idempotency_key IS NOT NULL);
UPDATE sandbox_payments p SET checkout_ref = s.client_reference_id
    FROM sandbox_sessions s WHERE s.id = p.session_id;

-- Reconciliation lists each kind over a window of creation times.
CREATE INDEX sandbox_payments_created ON sandbox_payments(created);
CREATE INDEX sandbox_refunds_created ON sandbox_refunds(created);
CREATE INDEX sandbox_disputes_created ON sandbox_disputes(created);
