-- Outgoing messages and text-message consent (issue 13).
-- Keep in step with ../sqlite/0022_messages.sql.
--
-- The outbox: every text and email is a row, written in the same transaction as what caused it
-- (a statement imported, a code asked for) and delivered by a worker. The recipient and the
-- rendered body are sealed under the sending tenant's data key (a body carries a pay-link token,
-- which is as good as a password until the identity check); the recipient's blind index lets
-- the console list a patient's messages and the consent ledger be consulted without opening it.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    -- The practice a text is from; the platform's tenant id for account email.
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    -- 'billing': pay-link texts and reminders (need the number's consent); 'account': codes and
    -- notices to an account's own confirmed address.
    purpose TEXT NOT NULL CHECK (purpose IN ('billing', 'account')),
    template TEXT NOT NULL,
    language TEXT NOT NULL,
    recipient_ct BYTEA NOT NULL,
    -- Under the tenant's index key: domain 'phone' (as patients.phone_bidx) or 'account-email'.
    recipient_bidx BYTEA NOT NULL,
    subject_ct BYTEA,
    body_ct BYTEA NOT NULL,
    -- The recipient's US time zone (IANA) for quiet hours; NULL when unknown (the most
    -- restrictive window applies).
    zone TEXT,
    -- What it is about, for the support console.
    patient_id TEXT,
    statement_id TEXT,
    -- queued → sending → sent → delivered | failed; dead: given up (retries spent, refused by the
    -- provider, or a send whose outcome is unknown: never retried, so never sent twice);
    -- suppressed: not sent (no consent, or opted out before it went).
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'dead', 'suppressed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_at BIGINT,
    provider TEXT,
    provider_id TEXT,
    delivery_status TEXT,
    -- The provider's error code and words (never a recipient or body).
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_by_patient ON outbox(patient_id, created_at);
CREATE INDEX outbox_by_recipient ON outbox(tenant_id, recipient_bidx);
CREATE INDEX outbox_by_provider_id ON outbox(provider_id);

-- The consent ledger, per number and practice (A2P 10DLC): rows are only added; a number's
-- standing is its latest row. The number is sealed too, so an index-key rotation can recompute
-- phone_bidx (an opt-out must survive it).
CREATE TABLE sms_consents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    phone_ct BYTEA NOT NULL,
    phone_bidx BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('opted_in', 'opted_out')),
    -- Which wording the number agreed to (or opted out under).
    wording_version TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('import', 'web', 'keyword', 'staff')),
    at BIGINT NOT NULL,
    -- Ordering within one second.
    seq BIGINT NOT NULL
);
CREATE INDEX sms_consents_by_phone ON sms_consents(tenant_id, phone_bidx, at, seq);

-- Replies to our texts (Twilio's inbound webhook), one row per Twilio message: a replayed
-- webhook finds its row and does nothing twice. Keywords change the ledger above; anything else
-- waits here for the practice's staff.
CREATE TABLE inbound_messages (
    id TEXT PRIMARY KEY,
    -- The practice that last texted the number (the one the reply is taken to answer).
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    message_sid TEXT NOT NULL UNIQUE,
    from_ct BYTEA NOT NULL,
    from_bidx BYTEA NOT NULL,
    body_ct BYTEA NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('opt_out', 'opt_in', 'help', 'other')),
    received_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX inbound_messages_by_tenant ON inbound_messages(tenant_id, received_at);

-- Password-reset codes emailed to a member account's own address (`accounts::codes`): only a
-- MAC of each code, one live per account, expiring, with its wrong tries counted.
CREATE TABLE account_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('reset')),
    code_mac BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at BIGINT
);
CREATE INDEX account_codes_by_user ON account_codes(user_id, created_at);
