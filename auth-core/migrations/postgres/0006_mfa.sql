-- Second factors: TOTP, recovery codes, the pending second step of a login,
-- and tenants that require a second factor of their members.

-- One TOTP factor per user. The secret is sealed (AES-256-GCM under the key
-- of `mfa.encryption_key`, the user id as associated data). `confirmed_at`
-- NULL: enrolled, not yet confirmed with a code (not a factor yet).
-- `last_step`: the 30-second step of the last accepted code; only a later
-- step is accepted, so each code works once.
CREATE TABLE totp_factors (
    user_id       UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    last_step     BIGINT NOT NULL DEFAULT -1
);

-- Ten single-use codes per user, stored as SHA-256 (80 random bits each:
-- nothing to brute-force). Regenerating deletes the old set.
CREATE TABLE recovery_codes (
    code_hash  BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

-- A login whose first factor was right (`first_factor`: 'pwd' a password,
-- 'fed' an identity provider) and whose second factor is awaited: the
-- `mfa_token` (stored hashed) finishes it once, within five minutes; five
-- wrong codes end it.
CREATE TABLE mfa_logins (
    token_hash BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  UUID,
    first_factor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures   BIGINT NOT NULL DEFAULT 0,
    ended_at   BIGINT
);
CREATE INDEX mfa_logins_by_user ON mfa_logins (user_id);

ALTER TABLE tenants ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
