-- Statements in (issue 12): what a practice's billing system sends, matched on its own ids.
-- A statement's external id is the sender's opaque key (not PHI), kept as sent, unique per
-- practice. A patient's external id is their record number in the billing system (PHI): kept as
-- a blind index (HMAC under the practice's blind-index key), unique per practice. Each patient and statement keeps a MAC of its imported content (HMAC under the
-- practice's blind-index key, so it says nothing to a database reader) to tell a re-sent record
-- that changed from one that did not. New patient details are encrypted like the others.
-- Keep in step with ../sqlite/0020_statement_import.sql.

-- The practice's id in its billing system: set by its first import, checked on every later one.
ALTER TABLE tenants ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX tenants_external_id ON tenants(external_id);

ALTER TABLE patients ADD COLUMN external_bidx BYTEA;
-- The record number itself, encrypted: `keys rotate-index` rebuilds `external_bidx` from it.
ALTER TABLE patients ADD COLUMN external_id_ct BYTEA;
ALTER TABLE patients ADD COLUMN content_mac BYTEA;
ALTER TABLE patients ADD COLUMN address_ct BYTEA;
ALTER TABLE patients ADD COLUMN email_ct BYTEA;
-- The sender's guarantor for the patient (name, phone, relationship), encrypted as one JSON value.
ALTER TABLE patients ADD COLUMN guarantor_ct BYTEA;
ALTER TABLE patients ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
ALTER TABLE patients ADD COLUMN minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE patients ADD COLUMN confidential BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX patients_external ON patients(tenant_id, external_bidx);

ALTER TABLE statements ADD COLUMN external_id TEXT;
ALTER TABLE statements ADD COLUMN content_mac BYTEA;
CREATE UNIQUE INDEX statements_external ON statements(tenant_id, external_id);

ALTER TABLE statement_lines ADD COLUMN procedure_code_ct BYTEA;

-- One row per import run (file, API batch or staff upload): who, how, and the counts. An API
-- batch sent with an Idempotency-Key keeps its answer, so a retry gets the same one back.
CREATE TABLE imports (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    source TEXT NOT NULL CHECK (source IN ('cli', 'api', 'staff')),
    actor TEXT NOT NULL,
    dry_run BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    idempotency_key TEXT,
    request_hash BYTEA,
    response TEXT
);
CREATE UNIQUE INDEX imports_idempotency ON imports(tenant_id, idempotency_key);
CREATE INDEX imports_by_tenant ON imports(tenant_id, started_at);
