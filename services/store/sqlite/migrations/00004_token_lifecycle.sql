-- +goose Up
-- Token lifecycle: external ids and metadata, CIDR allow-lists, usage and
-- rate limits, rotation; the scopes a user holds; an organization's token
-- policy. Lists are JSON text arrays; durations are INTEGER microseconds
-- (0: not set). SQLite adds one column per statement.
ALTER TABLE tokens ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
-- A JSON object (protojson of a google.protobuf.Struct); '' for none.
ALTER TABLE tokens ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '[]';
-- The id of the token whose remaining_uses this one's uses draw from (its
-- own id; for a rotation successor, the chain's first token); '' for
-- unlimited uses.
ALTER TABLE tokens ADD COLUMN usage_pool TEXT NOT NULL DEFAULT '';
-- On the pool's own row: uses not yet taken from the store. NULL elsewhere.
ALTER TABLE tokens ADD COLUMN remaining_uses INTEGER;
ALTER TABLE tokens ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN rate_period_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN rotated_to_id TEXT NOT NULL DEFAULT '';

-- Empty: the user holds every scope of the organization.
ALTER TABLE users ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';

-- Empty: any syntactically valid scope exists.
ALTER TABLE organizations ADD COLUMN allowed_scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE organizations ADD COLUMN max_token_lifetime_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN default_token_lifetime_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN max_rotation_grace_us INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE organizations DROP COLUMN max_rotation_grace_us;
ALTER TABLE organizations DROP COLUMN default_token_lifetime_us;
ALTER TABLE organizations DROP COLUMN max_token_lifetime_us;
ALTER TABLE organizations DROP COLUMN allowed_scopes;
ALTER TABLE users DROP COLUMN scopes;
ALTER TABLE tokens DROP COLUMN rotated_to_id;
ALTER TABLE tokens DROP COLUMN rate_period_us;
ALTER TABLE tokens DROP COLUMN rate_limit;
ALTER TABLE tokens DROP COLUMN remaining_uses;
ALTER TABLE tokens DROP COLUMN usage_pool;
ALTER TABLE tokens DROP COLUMN allowed_cidrs;
ALTER TABLE tokens DROP COLUMN metadata;
ALTER TABLE tokens DROP COLUMN external_id;
