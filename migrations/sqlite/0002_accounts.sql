-- Staff accounts (local identity provider), their grants, enrolment and sign-in throttling.
-- Keep in step with ../postgres/0002_accounts.sql.

-- What belongs to no practice (staff TOTP seeds, account emails) is encrypted under this
-- pseudo-tenant's keys.
INSERT INTO tenants (id, name, support_phone, created_at)
VALUES ('ten_00000000000000000000000000000000', 'PatriotPay platform', '', 0);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Account emails identify a practice's patients, so they are kept like other PHI: a keyed
    -- blind index (HMAC under the platform's index key) to find an account by, and the address
    -- itself encrypted under the platform's field key, bound to this row.
    email_index BLOB NOT NULL UNIQUE,
    email_ct BLOB NOT NULL,
    -- For accounts from an external identity provider (Cognito): its stable subject id. Accounts
    -- are matched on this, never on the email a user may edit.
    external_subject TEXT UNIQUE,
    password_hash TEXT,
    totp_secret_ct BLOB,
    totp_confirmed BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    must_reset BIGINT NOT NULL DEFAULT 0,
    disabled_at BIGINT,
    sessions_revoked_before BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE user_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants(id),
    expires_at BIGINT,
    reason TEXT,
    granted_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX user_grants_user ON user_grants(user_id);

CREATE TABLE enrolment_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE recovery_codes (
    code_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    used_at BIGINT
);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    -- The account's email blind index (never the email itself).
    email_index BLOB NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures(email_index, at);
CREATE INDEX login_failures_address ON login_failures(address, at);

-- Security alerts (break-glass use, and later anomalies), also sent to the alert webhook.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    delivered_at BIGINT
);
