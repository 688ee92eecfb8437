-- +goose Up
-- STRICT tables reject values of the wrong type instead of storing them.
-- Times are INTEGER unix microseconds in UTC; NULL means "not set".
-- Scopes are a JSON text array.
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    hint         TEXT NOT NULL,
    digest       BLOB NOT NULL UNIQUE,
    pepper_id    TEXT NOT NULL,
    scopes       TEXT NOT NULL DEFAULT '[]',
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- ListTokens pages newest first within a user or a whole organization; the
-- trailing id matches the tie-break so a page is one index range scan.
CREATE INDEX tokens_org_user_created ON tokens (org_id, user_id, created_at DESC, id DESC);
CREATE INDEX tokens_org_created ON tokens (org_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE tokens;
DROP TABLE users;
DROP TABLE organizations;
