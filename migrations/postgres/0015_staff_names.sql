-- Staff display names (issue 11, "who viewed my record"): patients see which staff member viewed
-- or changed their data by this name. A staff member's own name is not PHI, so it is kept in
-- the clear; `patriotpay users add --name` sets it (required for new staff) and `users rename`
-- changes it. Accounts made before this migration have none until renamed, and are shown to
-- patients as "a staff member of <practice>". Members (patients, guarantors) never get one.
-- Keep in step with ../sqlite/0015_staff_names.sql.

ALTER TABLE users ADD COLUMN display_name TEXT CHECK (char_length(display_name) BETWEEN 1 AND 80);

-- The record-views page finds a staff member's events during an emergency grant by actor and time.
CREATE INDEX audit_events_by_actor_time ON audit_events(actor, at);
