-- Round 3 hardening (docs/security.md). Kept column-for-column equal to
-- migrations/postgres/0007_hardening.sql.

-- API tokens have a public id (to list and revoke them), a name and their last use. Rows
-- made before get an id from their hash (a hash of a random token reveals nothing).
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
UPDATE api_tokens SET id = 'tok_' || substr(token_hash, 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens(id);

-- Console sessions live on the server: signing out (or revoking the token behind one)
-- ends it at once. The cookie holds a random id; only its hash is stored.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions(token_hash);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);

-- Credentials superseded by a claim or rekey stay usable for a short window, only to
-- repeat that exchange's request and read its kept answer (a lost answer never strands a
-- charger). A REST rotation clears them.
ALTER TABLE devices ADD COLUMN prev_password_hash TEXT;
ALTER TABLE devices ADD COLUMN prev_key_version BIGINT;
ALTER TABLE devices ADD COLUMN prev_owner_id TEXT;
ALTER TABLE devices ADD COLUMN prev_request_id TEXT;
ALTER TABLE devices ADD COLUMN prev_endpoint TEXT;
ALTER TABLE devices ADD COLUMN prev_until BIGINT;

-- A charger's earlier owners, each until the time it moved on: an offline session that
-- started before a move is the earlier owner's, billed by its tariff.
CREATE TABLE ownership_history (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    owner_id  TEXT NOT NULL,
    tariff_id TEXT,
    until     BIGINT NOT NULL,
    PRIMARY KEY (device_id, until)
);

-- An operator's resolution of a disputed session: who, when, and what (void, or billed
-- with corrected readings).
ALTER TABLE sessions ADD COLUMN resolved_by TEXT;
ALTER TABLE sessions ADD COLUMN resolved_at BIGINT;
ALTER TABLE sessions ADD COLUMN resolution TEXT;

-- Who did what: state-changing actions on chargers (commands and their results,
-- rotations, transfers, settings), shown on the charger's page.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        BIGINT NOT NULL,
    principal TEXT NOT NULL,
    owner_id  TEXT,
    device_id TEXT,
    action    TEXT NOT NULL,
    detail    TEXT,
    outcome   TEXT NOT NULL
);
CREATE INDEX audit_log_device ON audit_log(device_id, id);
CREATE INDEX audit_log_at ON audit_log(at);

-- One open offer per charger (an owner could otherwise fill another's inbox with offers of
-- the same charger). Older open offers of a charger that has several are void.
UPDATE transfers SET status = 'void'
WHERE status IN ('offered', 'accepted') AND EXISTS (
    SELECT 1 FROM transfers t2
    WHERE t2.device_id = transfers.device_id AND t2.status IN ('offered', 'accepted')
      AND (t2.created_at > transfers.created_at
           OR (t2.created_at = transfers.created_at AND t2.id > transfers.id)));
CREATE UNIQUE INDEX transfers_one_open_per_device ON transfers(device_id)
    WHERE status IN ('offered', 'accepted');
CREATE INDEX transfers_to_open ON transfers(to_owner, status);

-- The key version a kept answer was given under: a request id repeated under other
-- credentials (after a claim or rekey) is not answered from it, so a charger's next owner
-- cannot read its former owner's answers.
ALTER TABLE mqtt_requests ADD COLUMN key_version BIGINT;
