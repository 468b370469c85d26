-- Signed webhooks (src/webhooks): the endpoints operators subscribed, and a
-- transactional outbox of deliveries, written in the transaction of the audit
-- event they carry.

-- `secret`: the endpoint's signing secret, sealed (AES-256-GCM) under a key
-- derived from mfa.encryption_key; `events`: the event types, comma-separated.
CREATE TABLE webhook_endpoints (
    id         UUID PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- One message to one endpoint. `state`: 'pending' (due at `next_attempt_at`),
-- 'delivered', or 'failed' (attempts exhausted). A worker claims a due
-- delivery by moving `locked_until` past now in one statement, so two
-- instances never send it at the same time.
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at);
