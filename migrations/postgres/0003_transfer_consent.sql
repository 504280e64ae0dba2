-- Ownership transfer with consent (docs/operations.md, "Ownership transfer"): a transfer
-- is an offer the receiving owner accepts; only then is a claim code made, and only that
-- owner sees it. to_owner has no foreign key on purpose: an offer to an owner that does
-- not exist looks exactly like one to an owner that does, and is simply never accepted.
-- Codes of the earlier flow were issued without the receiver's consent: they are dropped.
CREATE TABLE transfers (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    from_owner TEXT NOT NULL,
    to_owner   TEXT NOT NULL,
    -- offered, accepted, declined, withdrawn, claimed, void (another offer was claimed)
    status     TEXT NOT NULL,
    code_hash  TEXT UNIQUE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX transfers_device ON transfers(device_id);
CREATE INDEX transfers_from ON transfers(from_owner, created_at);
CREATE INDEX transfers_to ON transfers(to_owner, created_at);
DROP TABLE claim_codes;

-- Set when a charger changes owner: its next local-list answer starts over from version 0,
-- whatever version it names (a version reached under the old owner means nothing now).
ALTER TABLE devices ADD COLUMN list_reset BIGINT NOT NULL DEFAULT 0;
