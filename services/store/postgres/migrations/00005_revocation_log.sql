-- +goose Up
-- The revocation log: one row per revocation or rotation, written in the
-- same transaction as the change, in commit order (writers take a
-- transaction-scoped advisory lock before inserting, so a sequence is never
-- committed after a higher one). Replicas and followers resume from a
-- sequence. No foreign key: the log outlives the tokens it names.
CREATE TABLE revocations (
    seq        bigserial PRIMARY KEY,
    token_id   text COLLATE "C" NOT NULL,
    -- The HMAC the caches are keyed by (never a secret).
    digest     bytea NOT NULL,
    -- 'revoke' or 'rotate'.
    reason     text NOT NULL,
    revoked_at timestamptz NOT NULL,
    -- A rotation's grace end; NULL for a revocation.
    not_after  timestamptz
);

-- PruneRevocations deletes by age.
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);

-- +goose Down
DROP TABLE revocations;
