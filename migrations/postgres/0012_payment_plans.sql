-- Payment plans (issue 10): a member spreads statements' balance over instalments charged to a
-- saved card. Each charge attempt is an ordinary checkout (checkouts, checkout_items), so the
-- ledger, receipts, refunds and reconciliation treat it like any payment.
-- Keep in step with ../sqlite/0012_payment_plans.sql.

-- The smallest instalment a practice accepts, in cents.
ALTER TABLE tenants ADD COLUMN plan_min_instalment_cents BIGINT NOT NULL DEFAULT 2500;

CREATE TABLE payment_plans (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    -- The saved card autopay charges (the processor's payment-method id) and how the member
    -- knows it ("Visa", "4242"): nothing else of the card.
    card_id TEXT NOT NULL,
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    total_cents BIGINT NOT NULL CHECK (total_cents > 0),
    -- The most autopay may charge at once, set by the member; above it they are asked instead.
    cap_cents BIGINT NOT NULL CHECK (cap_cents > 0),
    every TEXT NOT NULL CHECK (every IN ('2weeks', 'month')),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'completed', 'canceled')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payment_plans_user ON payment_plans(user_id, status);
CREATE INDEX payment_plans_tenant ON payment_plans(tenant_id, status);

-- The statements a plan pays. `live` is 1 while the plan is active or suspended: a statement is
-- in at most one such plan.
CREATE TABLE plan_statements (
    plan_id TEXT NOT NULL REFERENCES payment_plans(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    live BIGINT CHECK (live = 1),
    PRIMARY KEY (plan_id, statement_id)
);
CREATE UNIQUE INDEX plan_statements_one_live ON plan_statements(statement_id) WHERE live = 1;

-- The schedule. An instalment is noticed (the member told what, when and on which card) before
-- it is charged; each charge attempt is a checkout whose id is recorded before the processor is
-- called, its idempotency key derived from (plan, seq, attempts), so a crash mid-charge repeats
-- the same request and never charges twice.
CREATE TABLE plan_instalments (
    plan_id TEXT NOT NULL REFERENCES payment_plans(id),
    seq BIGINT NOT NULL CHECK (seq >= 1),
    due_at BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL CHECK (status IN
        ('scheduled', 'charging', 'retrying', 'action_required', 'paid', 'canceled')),
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When the scheduler may next act on it (charge, retry, or take over a stale 'charging').
    next_attempt_at BIGINT,
    noticed_at BIGINT,
    checkout_id TEXT REFERENCES checkouts(id),
    -- Our short code for the last failure ('declined', 'insufficient_funds',
    -- 'authentication_required', 'over_cap', 'card_removed'), never the processor's text.
    last_error TEXT,
    paid_at BIGINT,
    PRIMARY KEY (plan_id, seq)
);
CREATE INDEX plan_instalments_due ON plan_instalments(status, next_attempt_at);
CREATE INDEX plan_instalments_checkout ON plan_instalments(checkout_id);
