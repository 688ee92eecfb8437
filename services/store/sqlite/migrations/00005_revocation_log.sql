-- +goose Up
-- The revocation log: one row per revocation or rotation, written in the
-- same transaction as the change. SQLite has one writer, so sequences are
-- committed in order; AUTOINCREMENT never reuses a pruned sequence. No
-- foreign key: the log outlives the tokens it names. Times are INTEGER unix
-- microseconds in UTC.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id   TEXT NOT NULL,
    -- The HMAC the caches are keyed by (never a secret).
    digest     BLOB NOT NULL,
    -- 'revoke' or 'rotate'.
    reason     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    -- A rotation's grace end; NULL for a revocation.
    not_after  INTEGER
) STRICT;

-- PruneRevocations deletes by age.
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);

-- +goose Down
DROP TABLE revocations;
