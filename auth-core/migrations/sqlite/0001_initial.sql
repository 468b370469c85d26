-- Times are Unix milliseconds (BIGINT) on both backends, so comparisons in SQL
-- are exact and identical; ids are UUIDs (16-byte BLOBs here).

CREATE TABLE users (
    id                  BLOB PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL UNIQUE,      -- normalised to lower case at the edge
    password_hash       TEXT,                      -- PHC string; NULL for accounts without a password
    is_active           BOOLEAN NOT NULL,
    is_staff            BOOLEAN NOT NULL,
    is_superuser        BOOLEAN NOT NULL,
    email_verified_at   BIGINT,
    date_joined         BIGINT NOT NULL,
    last_login          BIGINT,
    password_changed_at BIGINT
);

CREATE TABLE profiles (
    user_id   BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    full_name TEXT NOT NULL,
    phone     TEXT
);

CREATE TABLE tenants (
    id         BLOB PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_by_tenant ON memberships (tenant_id, user_id);

CREATE TABLE refresh_families (
    id                  BLOB PRIMARY KEY NOT NULL,
    user_id             BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id           BLOB REFERENCES tenants (id) ON DELETE CASCADE,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoke_reason       TEXT,
    ip                  TEXT,
    user_agent          TEXT
);
CREATE INDEX refresh_families_by_user ON refresh_families (user_id);
CREATE INDEX refresh_families_by_revocation ON refresh_families (revoked_at);

CREATE TABLE refresh_tokens (
    token_hash     BLOB PRIMARY KEY NOT NULL,       -- SHA-256 of the token; the token itself is never stored
    family_id      BLOB NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    consumed_at    BIGINT,
    successor_salt BLOB                             -- set on rotation; derives the successor within the grace window
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE one_time_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    purpose    TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, purpose);

CREATE TABLE audit_events (
    id         BLOB PRIMARY KEY NOT NULL,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    user_id    BLOB,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, at);
