-- The authorize read model (docs/storage.md, "Authorize from memory"). Kept
-- equal in effect to migrations/sqlite/0013_read_model.sql.
--
-- One counter, raised in the same transaction as any change to what an authorize reads
-- from memory: a charger's owner, connectors, keys and superseded credentials, its
-- deletion, and every change to tags and to the chargers a tag is limited to. Triggers
-- raise it, so no write path can forget to. An instance answers from memory only while
-- the counter stands where it stood when the entries were read; a batch reads it before
-- it keeps such an answer.
--
-- The triggers are deferred to the commit (constraint triggers): the counter's row is
-- locked only while a transaction commits, so a long transaction (a bulk tag import)
-- does not hold every other writer that changes a tag or a key behind it, and the lock
-- is the last one a transaction takes (no deadlock can go through it).
CREATE TABLE authz_epoch (
    id    BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO authz_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION authz_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE authz_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER authz_devices_update AFTER UPDATE ON devices
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id
  OR OLD.connectors IS DISTINCT FROM NEW.connectors
  OR OLD.key_version IS DISTINCT FROM NEW.key_version
  OR OLD.require_v2 IS DISTINCT FROM NEW.require_v2
  OR OLD.prev_key_version IS DISTINCT FROM NEW.prev_key_version
  OR OLD.prev_owner_id IS DISTINCT FROM NEW.prev_owner_id
  OR OLD.prev_request_id IS DISTINCT FROM NEW.prev_request_id
  OR OLD.prev_endpoint IS DISTINCT FROM NEW.prev_endpoint
  OR OLD.prev_until IS DISTINCT FROM NEW.prev_until)
EXECUTE FUNCTION authz_bump();

CREATE CONSTRAINT TRIGGER authz_devices_delete AFTER DELETE ON devices
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION authz_bump();

CREATE CONSTRAINT TRIGGER authz_tags AFTER INSERT OR UPDATE OR DELETE ON tags
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION authz_bump();

CREATE CONSTRAINT TRIGGER authz_tag_devices AFTER INSERT OR UPDATE OR DELETE ON tag_devices
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION authz_bump();
