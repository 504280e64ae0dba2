-- The authorize read model (docs/storage.md, "Authorize from memory"). Kept
-- equal in effect to migrations/postgres/0013_read_model.sql.
--
-- One counter, raised in the same transaction as any change to what an authorize reads
-- from memory: a charger's owner, connectors, keys and superseded credentials, its
-- deletion, and every change to tags and to the chargers a tag is limited to. Triggers
-- raise it, so no write path can forget to. An instance answers from memory only while
-- the counter stands where it stood when the entries were read; a batch reads it before
-- it keeps such an answer.
CREATE TABLE authz_epoch (
    id    BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO authz_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER authz_devices_update AFTER UPDATE ON devices
WHEN OLD.owner_id IS NOT NEW.owner_id
  OR OLD.connectors IS NOT NEW.connectors
  OR OLD.key_version IS NOT NEW.key_version
  OR OLD.require_v2 IS NOT NEW.require_v2
  OR OLD.prev_key_version IS NOT NEW.prev_key_version
  OR OLD.prev_owner_id IS NOT NEW.prev_owner_id
  OR OLD.prev_request_id IS NOT NEW.prev_request_id
  OR OLD.prev_endpoint IS NOT NEW.prev_endpoint
  OR OLD.prev_until IS NOT NEW.prev_until
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_devices_delete AFTER DELETE ON devices
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tags_insert AFTER INSERT ON tags
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tags_update AFTER UPDATE ON tags
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tags_delete AFTER DELETE ON tags
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tag_devices_insert AFTER INSERT ON tag_devices
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tag_devices_delete AFTER DELETE ON tag_devices
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_tag_devices_update AFTER UPDATE ON tag_devices
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
