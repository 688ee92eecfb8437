-- +goose Up
-- Webhooks: endpoints per organization, an outbox of events written in the
-- same transaction as the change they describe, one delivery row per event
-- and endpoint, and the expiry notices already sent (one row per token and
-- notice, so a notice goes out once across replicas and restarts).
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    url           TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    -- A JSON text array of event types; "*" for all.
    event_types   TEXT NOT NULL DEFAULT '[]',
    -- The signing secret sealed with the webhook key (AES-GCM).
    secret        BLOB NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER,
    failing_since INTEGER
) STRICT;
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    type       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    -- Grows with insertion: orders one subject's deliveries.
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     INTEGER,
    last_attempt_at INTEGER,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    last_latency_us INTEGER NOT NULL DEFAULT 0,
    done_at         INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (done_at) WHERE done_at IS NOT NULL;

CREATE TABLE token_notices (
    token_id   TEXT NOT NULL,
    -- "expiring:<seconds>" or "expired".
    notice     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, notice)
) STRICT;
CREATE INDEX token_notices_expires ON token_notices (expires_at);

-- An organization's token.expiring windows in seconds (a JSON arrayempty: the server's default).
ALTER TABLE organizations ADD COLUMN expiry_warnings_s TEXT NOT NULL DEFAULT '[]';

-- The expiry scheduler reads a range of this index, never the whole table.
CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
ALTER TABLE organizations DROP COLUMN expiry_warnings_s;
DROP INDEX tokens_expires;
DROP TABLE token_notices;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
