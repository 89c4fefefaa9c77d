-- "This wasn't me" (issue 13): each notice to an account's owner (password changed, guarantor
-- grant added) carries a one-time link that signs the account out everywhere and alerts the
-- practice. Only the link's hash is kept.
-- Keep in step with ../sqlite/0026_account_alarms.sql.

CREATE TABLE account_alarms (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash BYTEA NOT NULL UNIQUE,
    -- The notice it came with: 'password-changed', 'grant-added'.
    notice TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_alarms_by_user ON account_alarms(user_id, created_at);
