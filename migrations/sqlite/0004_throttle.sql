-- Sign-in and identity-check limits under attack (issue 9): ordered claims, trusted staff
-- devices, and a per-practice hourly failure budget. Keep in step with
-- ../postgres/0004_throttle.sql.

-- One row per limit key ('acct:' + an account's email blind index in hex, 'addr:' + an address
-- key). A claim upserts its keys' rows first, so on PostgreSQL parallel claims on one account or
-- one address wait for each other's row lock and count each other's failures.
CREATE TABLE throttle_locks (
    key TEXT PRIMARY KEY,
    touched_at BIGINT NOT NULL
);

-- Staff browsers that completed a full sign-in (password and second factor): the cookie's
-- token is never stored, only its hash. Deleted on "sign out everywhere", reset and disable.
CREATE TABLE trusted_devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX trusted_devices_user ON trusted_devices(user_id, created_at);

-- The trusted device a failed sign-in came from (its own failures are bounded). Not a foreign
-- key: a revoked device's failures still count until they age out.
ALTER TABLE login_failures ADD COLUMN device_id BIGINT;
CREATE INDEX login_failures_device ON login_failures(device_id, at);

-- The practice an identity-check failure was about, for the practice's hourly failure budget.
ALTER TABLE verify_failures ADD COLUMN tenant_id TEXT;
CREATE INDEX verify_failures_tenant ON verify_failures(tenant_id, at);

-- The budget's alert is raised once per practice per clock hour (hour = unix time / 3600).
CREATE TABLE identity_budget_alerts (
    tenant_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour)
);
