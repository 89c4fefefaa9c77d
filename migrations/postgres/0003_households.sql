-- Patient and guarantor accounts, guarantor invitations, confidential statement lines, and
-- payments that settle several statements at once. Keep in step with ../sqlite/0003_households.sql.

-- 'member' accounts belong to patients and guarantors: password sign-in, grants over named
-- patients. 'staff' accounts sign in with a second factor and hold practice-scoped grants.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'staff' CHECK (kind IN ('staff', 'member'));

-- Patient and guarantor grants name the patient they cover; guarantor grants can be revoked.
ALTER TABLE user_grants
    ADD COLUMN patient_id TEXT REFERENCES patients(id),
    ADD COLUMN revoked_at BIGINT,
    ADD COLUMN revoked_by TEXT;
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
    token_hash BYTEA NOT NULL UNIQUE,
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
-- statement_id stays set when it covers exactly one (the pay-link flow); a signed-in account
-- starts checkouts without a link.
ALTER TABLE checkouts
    ALTER COLUMN statement_id DROP NOT NULL,
    ALTER COLUMN link_id DROP NOT NULL,
    ADD COLUMN user_id TEXT REFERENCES users(id),
    ADD CONSTRAINT checkouts_owner CHECK (link_id IS NOT NULL OR user_id IS NOT NULL);
DROP INDEX checkouts_one_live;

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
        CASE WHEN status IN ('creating', 'open') THEN 1 END FROM checkouts;

ALTER TABLE payments ALTER COLUMN statement_id DROP NOT NULL;

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
    SELECT id, statement_id, tenant_id, amount_cents FROM payments;

ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_payment_id_key,
    ADD CONSTRAINT ledger_entries_payment_statement UNIQUE (payment_id, statement_id);
