-- Anomaly rules (issue 14, `anomaly`): each alert raised once per rule, subject (an id or an
-- address, never PHI) and window; the row is the "once".
-- Keep in step with ../postgres/0028_anomalies.sql.

CREATE TABLE anomaly_raised (
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (rule, subject, window_start)
);
