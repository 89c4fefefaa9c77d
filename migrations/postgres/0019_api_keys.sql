-- Per-practice API keys (issue 12): what a practice's billing system presents to send statements
-- in (`POST /api/v1/statements`). The key is shown once; only its SHA-256 is kept (it carries
-- 256 random bits, so no salt is needed) with a short prefix to tell keys apart in lists. Scoped
-- to import; revocable; the last use is recorded.
-- Keep in step with ../sqlite/0019_api_keys.sql.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    label TEXT NOT NULL,
    -- The key's first characters, shown in lists ("ppk_Ab3d…").
    prefix TEXT NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('import')),
    -- Who made it: `user:<id>` (staff pages) or `cli`.
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id, created_at);
