-- +goose Up
-- Service accounts are users rows of kind 'service_account' (tokens and
-- the audit log reference users by id, so a machine identity is one more
-- kind of owner, not a second owner table). Their email column holds a
-- reserved unroutable address (<id>@service-account.invalid) that no
-- sign-in accepts; their name is unique among the organization's live
-- service accounts.
ALTER TABLE users ADD COLUMN kind text NOT NULL DEFAULT 'user';
ALTER TABLE users ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN description text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN created_by text NOT NULL DEFAULT '';
-- Disabled: no sign-in, no new tokens (the old ones were revoked).
-- Deleted: the row stays so that tokens and the audit log keep its id;
-- the email is replaced by <id>@deleted.invalid so the address is free.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
-- An admin's password reset: SHA-256 of a one-time 128-bit code.
ALTER TABLE users ADD COLUMN reset_hash bytea;
ALTER TABLE users ADD COLUMN reset_expires_at timestamptz;
CREATE UNIQUE INDEX users_service_account_name ON users (org_id, name)
    WHERE kind = 'service_account' AND deleted_at IS NULL;
-- ListUsers pages one organization's live users by email.
CREATE INDEX users_org_kind_email ON users (org_id, kind, email COLLATE "C", id) WHERE deleted_at IS NULL;

-- What a token acts for, copied from its owner at minting (an owner never
-- changes kind), so validation needs no join; and why it was revoked
-- ('' by a revoke, 'owner_disabled', 'owner_deleted').
ALTER TABLE tokens ADD COLUMN owner_kind text NOT NULL DEFAULT 'user';
ALTER TABLE tokens ADD COLUMN revoke_reason text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN revoke_reason;
ALTER TABLE tokens DROP COLUMN owner_kind;
DROP INDEX users_org_kind_email;
DROP INDEX users_service_account_name;
ALTER TABLE users DROP COLUMN reset_expires_at;
ALTER TABLE users DROP COLUMN reset_hash;
ALTER TABLE users DROP COLUMN deleted_at;
ALTER TABLE users DROP COLUMN disabled_at;
ALTER TABLE users DROP COLUMN created_by;
ALTER TABLE users DROP COLUMN description;
ALTER TABLE users DROP COLUMN name;
ALTER TABLE users DROP COLUMN kind;
