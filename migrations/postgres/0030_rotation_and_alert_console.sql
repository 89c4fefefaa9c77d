-- Issue 14: `incident rotate` and the security officer's alert console.
-- Keep in step with ../sqlite/0030_rotation_and_alert_console.sql.

-- Why a link was revoked: 'rotated' when `incident rotate` retired every live link (its relinking
-- step finds them by it). The visitor is told nothing different: a dead link is a dead link.
ALTER TABLE pay_links ADD COLUMN revoked_reason TEXT;

-- A key `incident rotate` gave a grace window: refused from this time on.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;

-- The steps of an `incident rotate` run done so far, so a rerun of the run resumes.
CREATE TABLE incident_steps (
    run TEXT NOT NULL,
    step TEXT NOT NULL,
    done_at BIGINT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (run, step)
);

-- The practice an alert is about (NULL: the platform's), and its acknowledgement.
ALTER TABLE alerts ADD COLUMN tenant_id TEXT REFERENCES tenants(id);
ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT REFERENCES users(id);
CREATE INDEX alerts_tenant ON alerts(tenant_id, at);

-- The security officer's notes on an alert: free text, so encrypted like PHI, under the key of
-- the practice whose console it was written in (the platform's pseudo-practice for the platform's
-- officers), which only that practice's officers (and the platform's) read.
CREATE TABLE alert_notes (
    id TEXT PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    author TEXT NOT NULL REFERENCES users(id),
    at BIGINT NOT NULL,
    note_ct BYTEA NOT NULL
);
CREATE INDEX alert_notes_alert ON alert_notes(alert_id, at);
