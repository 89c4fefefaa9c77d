-- Incident steps that act on many accounts (issue 14, `incident force-password-reset`) record
-- each account done under the run's name, so a rerun of the same run resumes where it stopped.
-- Keep in step with ../sqlite/0029_incident_progress.sql.

CREATE TABLE incident_progress (
    run TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    done_at BIGINT NOT NULL,
    PRIMARY KEY (run, user_id)
);
