-- Refused API keys per address (issue 12): a caller guessing keys is answered 429 after
-- MAX_REFUSALS_PER_ADDRESS refusals in the window (`apikeys`), and audited up to the limit,
-- not beyond it. Rows older than the window are pruned as new ones are written.
-- Keep in step with ../sqlite/0021_api_key_refusals.sql.

CREATE TABLE api_key_refusals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `limits::address_key`: the IPv4 address or the IPv6 /64.
    address_key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX api_key_refusals_by_address ON api_key_refusals(address_key, at);
CREATE INDEX api_key_refusals_by_time ON api_key_refusals(at);
