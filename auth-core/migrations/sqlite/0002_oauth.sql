-- Accounts at OpenID Connect providers, linked to local users by the
-- provider's (issuer, subject): never by email alone.

CREATE TABLE identity_links (
    issuer     TEXT NOT NULL,                  -- the provider's issuer identifier, exactly as validated in `iss`
    subject    TEXT NOT NULL,                  -- the provider's `sub`
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,                  -- the provider-verified email at link time
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
-- At most one identity per provider for each user; also the index by user.
CREATE UNIQUE INDEX identity_links_by_user ON identity_links (user_id, issuer);
