-- Passkeys (WebAuthn) and the state of their ceremonies.

-- A user's passkeys. `credential`: webauthn-rs's serialised credential (public
-- key, signature counter, flags); no secret. `credential_id` is unique across
-- users: an authenticator's credential belongs to one account.
CREATE TABLE passkeys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL UNIQUE,
    credential    TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- A registration or sign-in in progress ('register', 'sign_in',
-- 'second_factor'): the server-side state of its challenge, so any instance
-- can finish what another started. Deleted when consumed (one use); five
-- minutes to live. `user_id` NULL: a discoverable sign-in of anyone.
CREATE TABLE webauthn_challenges (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    UUID REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
