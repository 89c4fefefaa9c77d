-- Issue 13, finishing: member email confirmation, per-address limits, a practice's own texts.
--
-- Member email addresses confirmed by an emailed code before a local account is usable
-- (issue 13). Accounts made before this were made by staff, the operator or Cognito (which
-- confirms on its side) or by a member who has been using the address: they count as confirmed.
-- Keep in step with ../postgres/0027_confirmation_and_texts.sql.

ALTER TABLE users ADD COLUMN email_confirmed_at BIGINT;
UPDATE users SET email_confirmed_at = created_at;

-- account_codes gains the 'confirm' purpose. SQLite cannot change a CHECK in place, so the
-- table (nothing refers to it) is rebuilt with its rows.
CREATE TABLE account_codes_new (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('reset', 'confirm')),
    code_mac BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at BIGINT
);
INSERT INTO account_codes_new (id, user_id, purpose, code_mac, created_at, expires_at, attempts, used_at)
SELECT id, user_id, purpose, code_mac, created_at, expires_at, attempts, used_at FROM account_codes;
DROP TABLE account_codes;
ALTER TABLE account_codes_new RENAME TO account_codes;
CREATE INDEX account_codes_by_user ON account_codes(user_id, created_at);

-- Per-address limits on what anyone may ask for without an account (`limits::claim_use`): each
-- use keeps only its kind ('link-check': "is this text really from my practice?"; 'reset-code':
-- a password-reset code asked for), the address key and the time. Replaces link_checks, whose
-- rows are only a window's worth of counts.
CREATE TABLE address_uses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    address_key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX address_uses_by_address ON address_uses(kind, address_key, at);
CREATE INDEX address_uses_by_time ON address_uses(at);
DROP TABLE link_checks;

-- A practice's own wording of its billing texts (`messages::wording`), checked when saved (brand
-- first, the link, no PHI placeholder, no link shortener): plain text, as it names no patient.
-- A text without a row here uses the built-in wording.
CREATE TABLE message_templates (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    template TEXT NOT NULL CHECK (template IN ('pay-link', 'reminder')),
    language TEXT NOT NULL CHECK (language IN ('en', 'es')),
    body TEXT NOT NULL,
    segments BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, template, language)
);
-- Whether every text of the practice ends with the "is this text really from my practice?" page.
ALTER TABLE tenants ADD COLUMN check_link_footer BIGINT NOT NULL DEFAULT 0;

-- The consent ledger gains the source 'provider': an opt-out the text provider reported (Twilio
-- error 21610: the number replied STOP to the messaging service, which keeps its own list).
-- SQLite cannot change a CHECK in place: the table (nothing refers to it) is rebuilt with its
-- rows, in order.
CREATE TABLE sms_consents_new (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    phone_ct BLOB NOT NULL,
    phone_bidx BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('opted_in', 'opted_out')),
    wording_version TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('import', 'web', 'keyword', 'staff', 'provider')),
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
INSERT INTO sms_consents_new (id, tenant_id, phone_ct, phone_bidx, state, wording_version, source, at, seq)
SELECT id, tenant_id, phone_ct, phone_bidx, state, wording_version, source, at, seq FROM sms_consents;
DROP TABLE sms_consents;
ALTER TABLE sms_consents_new RENAME TO sms_consents;
CREATE INDEX sms_consents_by_phone ON sms_consents(tenant_id, phone_bidx, at, seq);
