-- Re-keying: blind-index key rotation (`keys rotate-index`) and the encrypted break-glass
-- reason. Keep in step with ../sqlite/0006_rekeying.sql.

-- One row per blind-index key rotation of a tenant (a practice or the platform). While it is
-- 'building', lookups keep using from_version and the new values are gathered in
-- blind_index_next; the switch writes them into the rows and marks it 'switched' in one
-- transaction (lookups then use to_version); 'retired' once from_version's key is destroyed.
CREATE TABLE blind_index_rotations (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    from_version BIGINT NOT NULL CHECK (from_version > 0),
    to_version BIGINT NOT NULL CHECK (to_version > from_version),
    state TEXT NOT NULL CHECK (state IN ('building', 'switched', 'retired')),
    started_at BIGINT NOT NULL,
    switched_at BIGINT,
    retired_at BIGINT,
    PRIMARY KEY (tenant_id, to_version)
);
-- At most one unfinished rotation per tenant.
CREATE UNIQUE INDEX blind_index_rotations_one_open ON blind_index_rotations(tenant_id)
    WHERE state <> 'retired';

-- New index values built beside the old ones: for each row and column, the value it held when
-- built (the switch applies a new value only where the row still holds it) and its value under
-- to_version. Emptied when the rotation retires its old key.
CREATE TABLE blind_index_next (
    tenant_id TEXT NOT NULL,
    to_version BIGINT NOT NULL,
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    old_value BYTEA NOT NULL,
    new_value BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, to_version, table_name, column_name, row_id),
    FOREIGN KEY (tenant_id, to_version) REFERENCES blind_index_rotations(tenant_id, to_version)
);
CREATE INDEX blind_index_next_old ON blind_index_next(tenant_id, to_version, table_name, column_name, old_value);

-- The break-glass reason is free text that may name a patient: encrypted under the grant's
-- practice key, bound to the grant row. The plaintext `reason` column is no longer written;
-- rows from before are sealed into reason_ct (and `reason` emptied) when the portal opens the
-- database (accounts::seal_legacy_reasons).
ALTER TABLE user_grants ADD COLUMN reason_ct BYTEA;
