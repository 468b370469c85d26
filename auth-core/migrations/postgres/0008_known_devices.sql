-- Where each user has signed in from, for new-device notices (src/detection.rs):
-- an HMAC-SHA256 of the user agent's family and the network prefix, under a key
-- that is not in the database; never either in the clear. Rows older than the
-- 90-day window are deleted at the user's next sign-in.
CREATE TABLE known_devices (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fingerprint  BYTEA NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, fingerprint)
);
