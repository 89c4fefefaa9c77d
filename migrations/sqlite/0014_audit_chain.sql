-- The audit chain (issue 11): a sealer hashes committed audit events in seq order into
-- audit_seals, each seal naming the hash of the one before, so an event edited, removed, added
-- or moved behind the application's back breaks the chain (`patriotpay audit verify`). Writers
-- are unchanged: they insert into audit_events as before. See server/src/audit/chain.rs.
-- Keep in step with ../postgres/0014_audit_chain.sql.

-- One row per seq from 1 up, without holes: 'event' seals the event with that seq; 'gap' seals a
-- seq no committed event had when the sealer's grace ran out (a rolled-back insert). hash =
-- SHA-256(prev_hash || canonical bytes), both lowercase hex of 32 bytes; the first prev_hash is
-- 32 zero bytes. The primary key is what keeps two sealers from forking the chain: the second
-- insert of a seq fails and its sealer starts again from the new head.
CREATE TABLE audit_seals (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'gap')),
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    sealed_at BIGINT NOT NULL
);
-- Gap seals are few; each sealer pass looks for events that committed at one's seq afterwards.
CREATE INDEX audit_seals_gaps ON audit_seals(seq) WHERE kind = 'gap';

-- Append-only, like audit_events.
CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals
BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END;
CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals
BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END;

-- The sealer's own notes, shared by every sealer (each server runs one): when seqs were first
-- seen missing just below the committed event `seq` ('gap_seen', starting their grace), and that
-- the event at `seq`, sealed as a gap, was alerted as a late commit ('late_commit', so the alert
-- is raised once). Not evidence: the chain does not depend on them.
CREATE TABLE audit_chain_notes (
    seq BIGINT NOT NULL,
    note TEXT NOT NULL CHECK (note IN ('gap_seen', 'late_commit')),
    at BIGINT NOT NULL,
    PRIMARY KEY (seq, note)
);

-- `audit export --since --until` finds its window by time.
CREATE INDEX audit_events_at ON audit_events(at);
