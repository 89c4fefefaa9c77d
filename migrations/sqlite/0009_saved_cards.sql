-- Saved cards (issue 10). The sandbox processor's customers, setup-mode checkouts and saved
-- payment methods (only the sandbox reads or writes sandbox_*), and the portal's side: one
-- processor customer per member account and each "save a card" attempt. Nothing of a card is
-- kept but its brand, last four digits and expiry, and only by the processor.
-- Keep in step with ../postgres/0009_saved_cards.sql.

-- A checkout is in payment mode (an amount) or setup mode (saves a card on a customer, no
-- amount); a setup checkout names its customer and, once complete, its SetupIntent.
ALTER TABLE sandbox_sessions ADD COLUMN mode TEXT NOT NULL DEFAULT 'payment';
ALTER TABLE sandbox_sessions ADD COLUMN customer_id TEXT;
ALTER TABLE sandbox_sessions ADD COLUMN setup_intent TEXT;

-- metadata is the customer's whole metadata as JSON: the member's opaque ref, nothing else.
CREATE TABLE sandbox_customers (
    id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL
);

-- A card saved by one setup checkout; detached (removed from its customer) is never undone.
CREATE TABLE sandbox_payment_methods (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    setup_session_id TEXT NOT NULL UNIQUE,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month BIGINT NOT NULL,
    exp_year BIGINT NOT NULL,
    detached BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    -- Order of saving (newest first in lists); seconds are too coarse for two saves.
    seq BIGINT NOT NULL
);
CREATE INDEX sandbox_payment_methods_customer ON sandbox_payment_methods(customer_id, detached);

-- One processor customer per member account, made on first use.
CREATE TABLE member_customers (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    customer_id TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Each "save a card" a member started: recorded before the processor is asked (its id is the
-- idempotency key's), then given the processor's session; 'saved' once the member came back
-- from a completed setup (the card.saved audit event is written on that move, once).
CREATE TABLE card_setups (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    processor_session_id TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('creating', 'open', 'saved')),
    created_at BIGINT NOT NULL
);
CREATE INDEX card_setups_user ON card_setups(user_id);
