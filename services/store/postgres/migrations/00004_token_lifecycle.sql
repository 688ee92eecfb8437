-- +goose Up
-- Token lifecycle: external ids and metadata, CIDR allow-lists, usage and
-- rate limits, rotation; the scopes a user holds; an organization's token
-- policy. Durations are bigint microseconds (0: not set).
ALTER TABLE tokens
    ADD COLUMN external_id    text NOT NULL DEFAULT '',
    -- A JSON object (protojson of a google.protobuf.Struct); '' for none.
    ADD COLUMN metadata       text NOT NULL DEFAULT '',
    ADD COLUMN allowed_cidrs  text[] NOT NULL DEFAULT '{}',
    -- The id of the token whose remaining_uses this one's uses draw from
    -- (its own id; for a rotation successor, the chain's first token);
    -- '' for unlimited uses.
    ADD COLUMN usage_pool     text COLLATE "C" NOT NULL DEFAULT '',
    -- On the pool's own row: uses not yet taken from the store. NULL elsewhere.
    ADD COLUMN remaining_uses bigint,
    ADD COLUMN rate_limit     bigint NOT NULL DEFAULT 0,
    ADD COLUMN rate_period_us bigint NOT NULL DEFAULT 0,
    ADD COLUMN rotated_to_id  text COLLATE "C" NOT NULL DEFAULT '';

ALTER TABLE users
    -- Empty: the user holds every scope of the organization.
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{}';

ALTER TABLE organizations
    -- Empty: any syntactically valid scope exists.
    ADD COLUMN allowed_scopes            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN max_token_lifetime_us     bigint NOT NULL DEFAULT 0,
    ADD COLUMN default_token_lifetime_us bigint NOT NULL DEFAULT 0,
    ADD COLUMN max_rotation_grace_us     bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE organizations
    DROP COLUMN allowed_scopes,
    DROP COLUMN max_token_lifetime_us,
    DROP COLUMN default_token_lifetime_us,
    DROP COLUMN max_rotation_grace_us;
ALTER TABLE users DROP COLUMN scopes;
ALTER TABLE tokens
    DROP COLUMN external_id,
    DROP COLUMN metadata,
    DROP COLUMN allowed_cidrs,
    DROP COLUMN usage_pool,
    DROP COLUMN remaining_uses,
    DROP COLUMN rate_limit,
    DROP COLUMN rate_period_us,
    DROP COLUMN rotated_to_id;
