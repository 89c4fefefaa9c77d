-- PatriotPay schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql.
-- Columns ending in _ct hold AES-256-GCM ciphertexts of PHI (see server/src/crypto.rs).

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    support_phone TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Per-tenant data keys, wrapped by the key provider's master key (key_id says which).
-- purpose 'phi-field' keys encrypt PHI columns (versioned: rotate adds one); 'blind-index'
-- keys compute the keyed hashes that let us search PHI without plaintext.
CREATE TABLE data_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('phi-field', 'blind-index')),
    version BIGINT NOT NULL CHECK (version > 0),
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, purpose, version)
);

-- Bumped by `keys flush-cache`; running servers drop their cached plaintext keys when it moves.
CREATE TABLE key_cache_epoch (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO key_cache_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    first_name_ct BLOB NOT NULL,
    last_name_ct BLOB NOT NULL,
    dob_ct BLOB NOT NULL,
    zip_ct BLOB NOT NULL,
    phone_ct BLOB NOT NULL,
    account_number_ct BLOB NOT NULL,
    -- Blind indexes: HMAC-SHA256 under the tenant's blind-index key of normalised values.
    phone_bidx BLOB NOT NULL,
    name_dob_bidx BLOB NOT NULL,
    account_bidx BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX patients_tenant ON patients(tenant_id);
CREATE INDEX patients_phone_bidx ON patients(tenant_id, phone_bidx);
CREATE INDEX patients_name_dob_bidx ON patients(tenant_id, name_dob_bidx);
CREATE INDEX patients_account_bidx ON patients(tenant_id, account_bidx);

CREATE TABLE statements (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    statement_date TEXT NOT NULL,
    due_date TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX statements_patient ON statements(patient_id);

CREATE TABLE statement_lines (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    line_no BIGINT NOT NULL,
    service_date_ct BLOB NOT NULL,
    description_ct BLOB NOT NULL,
    charge_cents BIGINT NOT NULL CHECK (charge_cents >= 0),
    insurance_paid_cents BIGINT NOT NULL CHECK (insurance_paid_cents >= 0),
    adjustment_cents BIGINT NOT NULL CHECK (adjustment_cents >= 0),
    patient_cents BIGINT NOT NULL CHECK (patient_cents >= 0),
    UNIQUE (statement_id, line_no)
);

CREATE TABLE pay_links (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    token_hash BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_at BIGINT,
    first_used_at BIGINT
);

CREATE TABLE verify_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    address TEXT NOT NULL,
    patient_id TEXT
);
CREATE INDEX verify_failures_address ON verify_failures(address, at);
CREATE INDEX verify_failures_patient ON verify_failures(patient_id, at);

CREATE TABLE checkouts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    link_id TEXT NOT NULL REFERENCES pay_links(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    processor_session_id TEXT UNIQUE,
    checkout_url TEXT,
    status TEXT NOT NULL CHECK (status IN ('creating', 'open', 'complete', 'expired', 'failed')),
    created_at BIGINT NOT NULL
);
CREATE INDEX checkouts_statement ON checkouts(statement_id, status);
-- At most one live checkout per statement: two tabs cannot both take the balance.
CREATE UNIQUE INDEX checkouts_one_live ON checkouts(statement_id) WHERE status IN ('creating', 'open');

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    processor_payment_id TEXT NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    paid_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX payments_statement ON payments(statement_id);

-- The ledger a balance is derived from: charges from statement lines, payments from the
-- processor. Amounts are positive; the kind gives the sign.
CREATE TABLE ledger_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'payment')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    line_id TEXT UNIQUE REFERENCES statement_lines(id),
    payment_id TEXT UNIQUE REFERENCES payments(id),
    created_at BIGINT NOT NULL,
    CHECK ((kind = 'charge' AND line_id IS NOT NULL AND payment_id IS NULL)
        OR (kind = 'payment' AND payment_id IS NOT NULL AND line_id IS NULL))
);
CREATE INDEX ledger_statement ON ledger_entries(statement_id);

CREATE TABLE processor_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    on_behalf_of TEXT,
    tenant_id TEXT,
    patient_id TEXT,
    action TEXT NOT NULL,
    resource TEXT,
    request_id TEXT,
    address TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_patient ON audit_events(patient_id, at);

-- Append-only: the database itself refuses edits and deletions of audit events.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expiry_date BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expiry_date);
