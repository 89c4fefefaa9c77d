-- Patient and guarantor accounts, guarantor invitations, confidential statement lines, and
-- payments that settle several statements at once. Keep in step with ../postgres/0003_households.sql.

-- 'member' accounts belong to patients and guarantors: password sign-in, grants over named
-- patients. 'staff' accounts sign in with a second factor and hold practice-scoped grants.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'staff' CHECK (kind IN ('staff', 'member'));

-- Patient and guarantor grants name the patient they cover; guarantor grants can be revoked.
ALTER TABLE user_grants ADD COLUMN patient_id TEXT REFERENCES patients(id);
ALTER TABLE user_grants ADD COLUMN revoked_at BIGINT;
ALTER TABLE user_grants ADD COLUMN revoked_by TEXT;
CREATE INDEX user_grants_patient ON user_grants(patient_id);
-- A patient has at most one account of their own (guarantors are separate grants).
CREATE UNIQUE INDEX user_grants_one_patient_account ON user_grants(patient_id)
    WHERE role = 'patient' AND revoked_at IS NULL;

-- A line the practice marks confidential shows its amounts but never its description to a
-- guarantor.
ALTER TABLE statement_lines ADD COLUMN confidential BIGINT NOT NULL DEFAULT 0;

-- Single-use invitations for a guarantor: whoever holds the link must also answer the
-- dependant's identity questions. Only the token's hash is kept.
CREATE TABLE guarantor_invitations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    token_hash BLOB NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_at BIGINT,
    used_at BIGINT,
    used_by TEXT REFERENCES users(id),
    revoked_at BIGINT
);
CREATE INDEX guarantor_invitations_patient ON guarantor_invitations(patient_id);

-- One checkout (and so one card payment) may now cover several statements of one practice.
-- SQLite cannot drop NOT NULL or UNIQUE in place, so checkouts, payments and the ledger are
-- rebuilt: copied aside, dropped child-first, recreated and refilled parent-first.
CREATE TEMP TABLE old_checkouts AS SELECT * FROM checkouts;
CREATE TEMP TABLE old_payments AS SELECT * FROM payments;
CREATE TEMP TABLE old_ledger AS SELECT * FROM ledger_entries;
DROP TABLE ledger_entries;
DROP TABLE payments;
DROP TABLE checkouts;

CREATE TABLE checkouts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    -- Set when the checkout covers exactly one statement (the pay-link flow).
    statement_id TEXT REFERENCES statements(id),
    -- Who started it: a pay-link visitor or a signed-in account.
    link_id TEXT REFERENCES pay_links(id),
    user_id TEXT REFERENCES users(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    processor_session_id TEXT UNIQUE,
    checkout_url TEXT,
    status TEXT NOT NULL CHECK (status IN ('creating', 'open', 'complete', 'expired', 'failed')),
    created_at BIGINT NOT NULL,
    CHECK (link_id IS NOT NULL OR user_id IS NOT NULL)
);
INSERT INTO checkouts (id, tenant_id, statement_id, link_id, amount_cents, idempotency_key,
        processor_session_id, checkout_url, status, created_at)
    SELECT id, tenant_id, statement_id, link_id, amount_cents, idempotency_key,
        processor_session_id, checkout_url, status, created_at FROM old_checkouts;
CREATE INDEX checkouts_statement ON checkouts(statement_id, status);

-- What each checkout asks for, statement by statement. `live` is 1 while the checkout is
-- creating or open: at most one live checkout per statement, so two tabs (or a patient and
-- their guarantor) cannot both take the same balance.
CREATE TABLE checkout_items (
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    live BIGINT CHECK (live = 1),
    PRIMARY KEY (checkout_id, statement_id)
);
CREATE UNIQUE INDEX checkout_items_one_live ON checkout_items(statement_id) WHERE live = 1;
INSERT INTO checkout_items (checkout_id, statement_id, amount_cents, live)
    SELECT id, statement_id, amount_cents,
        CASE WHEN status IN ('creating', 'open') THEN 1 END FROM old_checkouts;

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    -- Set when the payment settles exactly one statement; payment_allocations always says.
    statement_id TEXT REFERENCES statements(id),
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    processor_payment_id TEXT NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    paid_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
INSERT INTO payments SELECT id, tenant_id, statement_id, checkout_id, processor_payment_id,
    amount_cents, card_brand, card_last4, paid_at, recorded_at FROM old_payments;
CREATE INDEX payments_statement ON payments(statement_id);

-- How a payment splits across statements; the ledger has one payment entry per allocation.
CREATE TABLE payment_allocations (
    payment_id TEXT NOT NULL REFERENCES payments(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    PRIMARY KEY (payment_id, statement_id)
);
CREATE INDEX payment_allocations_statement ON payment_allocations(statement_id);
INSERT INTO payment_allocations (payment_id, statement_id, tenant_id, amount_cents)
    SELECT id, statement_id, tenant_id, amount_cents FROM old_payments;

CREATE TABLE ledger_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'payment')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    line_id TEXT UNIQUE REFERENCES statement_lines(id),
    payment_id TEXT REFERENCES payments(id),
    created_at BIGINT NOT NULL,
    CHECK ((kind = 'charge' AND line_id IS NOT NULL AND payment_id IS NULL)
        OR (kind = 'payment' AND payment_id IS NOT NULL AND line_id IS NULL)),
    UNIQUE (payment_id, statement_id)
);
INSERT INTO ledger_entries SELECT id, tenant_id, statement_id, kind, amount_cents, line_id,
    payment_id, created_at FROM old_ledger;
CREATE INDEX ledger_statement ON ledger_entries(statement_id);

DROP TABLE old_ledger;
DROP TABLE old_payments;
DROP TABLE old_checkouts;
