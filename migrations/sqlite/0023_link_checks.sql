-- "Is this text really from my practice?" (issue 13): each check of a pasted pay link from one
-- address (`limits::address_key`), genuine or not, so an address gets at most
-- `link_check::MAX_CHECKS_PER_ADDRESS` in the window and cannot use the page to test guessed
-- tokens. No token, link or practice is kept: only who asked and when. Rows older than the window
-- are pruned as new ones are written.
-- Keep in step with ../postgres/0023_link_checks.sql.

CREATE TABLE link_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address_key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX link_checks_by_address ON link_checks(address_key, at);
CREATE INDEX link_checks_by_time ON link_checks(at);
