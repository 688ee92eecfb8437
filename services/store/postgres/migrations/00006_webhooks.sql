-- +goose Up
-- Webhooks: endpoints per organization, an outbox of events written in the
-- same transaction as the change they describe, one delivery row per event
-- and endpoint, and the expiry notices already sent (one row per token and
-- notice, so a notice goes out once across replicas and restarts).
CREATE TABLE webhook_endpoints (
    id            text COLLATE "C" PRIMARY KEY,
    org_id        text COLLATE "C" NOT NULL REFERENCES organizations (id),
    url           text NOT NULL,
    description   text NOT NULL DEFAULT '',
    -- "*" for all types.
    event_types   text[] NOT NULL DEFAULT '{}',
    -- The signing secret sealed with the webhook key (AES-GCM).
    secret        bytea NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL,
    disabled_at   timestamptz,
    failing_since timestamptz
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);

CREATE TABLE webhook_events (
    id         text COLLATE "C" PRIMARY KEY,
    org_id     text COLLATE "C" NOT NULL,
    type       text NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    payload    text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- Grows with insertion: orders one subject's deliveries.
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text COLLATE "C" NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id     text COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id          text COLLATE "C" NOT NULL,
    subject         text COLLATE "C" NOT NULL,
    state           text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text NOT NULL DEFAULT '',
    lease_until     timestamptz,
    last_attempt_at timestamptz,
    last_status     integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    last_latency_us bigint NOT NULL DEFAULT 0,
    done_at         timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (done_at) WHERE done_at IS NOT NULL;

CREATE TABLE token_notices (
    token_id   text COLLATE "C" NOT NULL,
    -- "expiring:<seconds>" or "expired".
    notice     text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (token_id, notice)
);
CREATE INDEX token_notices_expires ON token_notices (expires_at);

-- An organization's token.expiring windows in seconds (empty: the server's default).
ALTER TABLE organizations ADD COLUMN expiry_warnings_s bigint[] NOT NULL DEFAULT '{}';

-- The expiry scheduler reads a range of this index, never the whole table.
CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
ALTER TABLE organizations DROP COLUMN expiry_warnings_s;
DROP INDEX tokens_expires;
DROP TABLE token_notices;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
