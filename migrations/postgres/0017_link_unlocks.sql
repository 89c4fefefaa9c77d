-- Pay links unlocked by staff (issue 11, support console): a link locked after five wrong
-- identity answers may be unlocked by a support agent or practice admin of its practice once
-- they confirmed the patient's identity on the phone. Who did it, when, and the reason they
-- wrote are kept here; the reason is free text that may name the patient, so it is stored only
-- encrypted (AES-256-GCM under the practice's field key, bound to this row: keys::ENCRYPTED).
-- The audit event of the unlock commits in the same transaction.
-- Keep in step with ../sqlite/0017_link_unlocks.sql.

CREATE TABLE pay_link_unlocks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    link_id TEXT NOT NULL REFERENCES pay_links(id),
    unlocked_by TEXT NOT NULL REFERENCES users(id),
    -- How many failed answers the link had when it was unlocked.
    failed_attempts BIGINT NOT NULL,
    reason_ct BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pay_link_unlocks_link ON pay_link_unlocks(link_id);
