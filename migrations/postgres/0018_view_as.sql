-- View-as (issue 11): a support agent or practice admin sees a patient's own pages, read-only,
-- for at most 30 minutes, with a reason and a ticket reference on record. One row per view-as
-- session; the audit events written during it carry the staff member as actor and the patient
-- as on-behalf-of, and "who viewed my record" finds this row's reason and ticket by staff
-- member, patient and time. The reason is free text that may name the patient: encrypted under
-- the practice's field key, bound to this row. The ticket reference is a support-desk id, kept in
-- the clear (checked at the edge: letters, digits and . _ # / - only).
-- Keep in step with ../sqlite/0018_view_as.sql.

CREATE TABLE view_as_sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    staff_user_id TEXT NOT NULL REFERENCES users(id),
    ticket TEXT NOT NULL,
    reason_ct BYTEA NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- When it ended early (stopped, staff signed out); NULL while running or once it ran out.
    ended_at BIGINT
);
CREATE INDEX view_as_sessions_by_patient ON view_as_sessions(patient_id, staff_user_id, started_at);

-- "Act on behalf": a practice admin lets staff in view-as take a payment the patient dictates
-- on the phone. Off unless turned on; each change is audited.
ALTER TABLE tenants ADD COLUMN act_on_behalf BIGINT NOT NULL DEFAULT 0;

-- The staff member who took a payment on the patient's behalf (view-as with act-on-behalf and
-- the patient's verbal consent): the receipt names them.
ALTER TABLE checkouts ADD COLUMN taken_by TEXT REFERENCES users(id);
