-- +goose Up
-- Verified secret-scanning reports (GitHub's partner program): one row per
-- reported keymint token that exists, written before the report is answered
-- and processed (revoked) after it, so a crash in between loses nothing: a
-- restart processes the rows still unprocessed. No secret is stored: the
-- token by id, where it was found (url, source) and who reported it.
CREATE TABLE leak_reports (
    id           text COLLATE "C" PRIMARY KEY,
    token_id     text COLLATE "C" NOT NULL,
    reporter     text NOT NULL,
    url          text NOT NULL,
    source       text NOT NULL,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz
);

-- The processor reads what is left to do, oldest first.
CREATE INDEX leak_reports_pending ON leak_reports (received_at, id) WHERE processed_at IS NULL;

-- Audit events may carry details (a leak's url and source): a JSON object
-- of strings.
ALTER TABLE audit_events ADD COLUMN details text NOT NULL DEFAULT '{}';

-- The user whose token an event concerns when someone else acted (a leak
-- report): that user lists it too, not only the org's admins.
ALTER TABLE audit_events ADD COLUMN subject_user_id text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX audit_events_subject_created ON audit_events (org_id, subject_user_id, created_at DESC, id DESC)
    WHERE subject_user_id <> '';

-- +goose Down
DROP INDEX audit_events_subject_created;
ALTER TABLE audit_events DROP COLUMN subject_user_id;
ALTER TABLE audit_events DROP COLUMN details;
DROP TABLE leak_reports;
