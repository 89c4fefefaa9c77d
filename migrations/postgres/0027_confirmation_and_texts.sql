-- Issue 13, finishing: member email confirmation, per-address limits, a practice's own texts.
--
-- Member email addresses confirmed by an emailed code before a local account is usable
-- (issue 13). Accounts made before this were made by staff, the operator or Cognito (which
-- confirms on its side) or by a member who has been using the address: they count as confirmed.
-- Keep in step with ../sqlite/0027_confirmation_and_texts.sql.

ALTER TABLE users ADD COLUMN email_confirmed_at BIGINT;
UPDATE users SET email_confirmed_at = created_at;

ALTER TABLE account_codes DROP CONSTRAINT account_codes_purpose_check;
ALTER TABLE account_codes ADD CONSTRAINT account_codes_purpose_check
    CHECK (purpose IN ('reset', 'confirm'));

-- Per-address limits on what anyone may ask for without an account (`limits::claim_use`): each
-- use keeps only its kind ('link-check': "is this text really from my practice?"; 'reset-code':
-- a password-reset code asked for), the address key and the time. Replaces link_checks, whose
-- rows are only a window's worth of counts.
CREATE TABLE address_uses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
ALTER TABLE sms_consents DROP CONSTRAINT sms_consents_source_check;
ALTER TABLE sms_consents ADD CONSTRAINT sms_consents_source_check
    CHECK (source IN ('import', 'web', 'keyword', 'staff', 'provider'));
