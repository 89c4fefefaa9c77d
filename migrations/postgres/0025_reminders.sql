-- Text reminders of a balance still owed (issue 13): a practice's cadence in days after a
-- statement's first text (default 7 and 14) and on its due date; each step queued at most once
-- per statement; staff may pause a statement's reminders.
-- Keep in step with ../sqlite/0025_reminders.sql.

ALTER TABLE tenants ADD COLUMN reminder_days TEXT NOT NULL DEFAULT '7,14';
ALTER TABLE tenants ADD COLUMN remind_on_due_date BIGINT NOT NULL DEFAULT 1;
ALTER TABLE statements ADD COLUMN reminders_paused_at BIGINT;

CREATE TABLE statement_reminders (
    statement_id TEXT NOT NULL REFERENCES statements(id),
    -- 'd7', 'd14', … (days after the first text) or 'due'.
    step TEXT NOT NULL,
    -- What became of it: 'queued', 'opted_out', 'no_number', 'paid'.
    outcome TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (statement_id, step)
);
