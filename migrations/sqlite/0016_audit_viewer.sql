-- The audit viewer (issue 11): security officers and auditors read one practice's events newest
-- first, paged by seq, filtered by actor or address (server/src/audit/viewer.rs). The patient
-- filter has audit_patient; action prefix and time are read along the practice's index.
-- Keep in step with ../postgres/0016_audit_viewer.sql.

CREATE INDEX audit_events_tenant_seq ON audit_events(tenant_id, seq);
CREATE INDEX audit_events_tenant_actor ON audit_events(tenant_id, actor, seq);
CREATE INDEX audit_events_tenant_address ON audit_events(tenant_id, address, seq);
