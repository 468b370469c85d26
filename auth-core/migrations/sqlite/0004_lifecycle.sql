-- Account and tenant lifecycle: invitations, email change, account deletion.

-- An invitation to join a tenant, accepted by the account whose verified
-- email is `email`. Its token is stored hashed, like every one-time token.
CREATE TABLE invitations (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,                   -- normalised to lower case at the edge
    role        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    invited_by  BLOB REFERENCES users (id) ON DELETE SET NULL,  -- NULL: an operator
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    revoked_at  BIGINT
);
-- At most one open invitation per address and tenant; an expired one is
-- closed (revoked) before a new one is written.
CREATE UNIQUE INDEX invitations_open ON invitations (tenant_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- An email change carries the new address, and the session that asked for it
-- (kept signed in when the change is confirmed; the others are revoked).
ALTER TABLE one_time_tokens ADD COLUMN new_email TEXT;
ALTER TABLE one_time_tokens ADD COLUMN session_id BLOB;

-- Sessions whose rows went with their deleted account: the revocation poll
-- reads these beside refresh_families.revoked_at, so every instance refuses
-- the account's access tokens within one poll. Pruned with ended sessions.
CREATE TABLE deleted_sessions (
    id         BLOB PRIMARY KEY NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX deleted_sessions_by_revocation ON deleted_sessions (revoked_at);
