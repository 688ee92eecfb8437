-- +goose Up
-- Ids are caller-generated UUID strings kept as text. COLLATE "C" makes their
-- order bytewise, so ListTokens' tie-break by id is the same as on SQLite and
-- does not depend on the server's locale.
CREATE TABLE organizations (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE users (
    id            text COLLATE "C" PRIMARY KEY,
    org_id        text COLLATE "C" NOT NULL REFERENCES organizations (id),
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    admin         boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL
);

CREATE TABLE tokens (
    id           text COLLATE "C" PRIMARY KEY,
    org_id       text COLLATE "C" NOT NULL REFERENCES organizations (id),
    user_id      text COLLATE "C" NOT NULL REFERENCES users (id),
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    hint         text NOT NULL,
    digest       bytea NOT NULL UNIQUE,
    pepper_id    text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    created_by   text COLLATE "C" NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- ListTokens pages newest first within a user or a whole organization; the
-- trailing id matches the tie-break so a page is one index range scan.
CREATE INDEX tokens_org_user_created ON tokens (org_id, user_id, created_at DESC, id DESC);
CREATE INDEX tokens_org_created ON tokens (org_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE tokens;
DROP TABLE users;
DROP TABLE organizations;
