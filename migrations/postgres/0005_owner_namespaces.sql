-- Owner namespaces (docs/storage.md): a tag uid is unique per owner (the same card may be
-- enrolled by several owners, each enrollment independent), and so is a tariff id. Device
-- ids stay global: they are MQTT client ids. Kept equal in effect to
-- migrations/sqlite/0005_owner_namespaces.sql, which rebuilds the tables instead.

-- A device's tariff is one of its owner's.
ALTER TABLE devices DROP CONSTRAINT devices_tariff_id_fkey;
ALTER TABLE tariffs DROP CONSTRAINT tariffs_pkey;
ALTER TABLE tariffs ADD PRIMARY KEY (owner_id, id);
DROP INDEX tariffs_owner;
ALTER TABLE devices ADD FOREIGN KEY (owner_id, tariff_id) REFERENCES tariffs(owner_id, id);

ALTER TABLE tag_devices ADD COLUMN owner_id TEXT;
UPDATE tag_devices td SET owner_id = t.owner_id FROM tags t WHERE t.uid = td.uid;
ALTER TABLE tag_devices ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE tag_devices DROP CONSTRAINT tag_devices_uid_fkey;
ALTER TABLE tag_devices DROP CONSTRAINT tag_devices_pkey;
ALTER TABLE tags DROP CONSTRAINT tags_pkey;
ALTER TABLE tags ADD PRIMARY KEY (owner_id, uid);
ALTER TABLE tag_devices ADD PRIMARY KEY (owner_id, uid, device_id);
ALTER TABLE tag_devices ADD FOREIGN KEY (owner_id, uid) REFERENCES tags(owner_id, uid) ON DELETE CASCADE;
CREATE INDEX tags_uid ON tags(uid);
CREATE INDEX tag_devices_device ON tag_devices(device_id);

-- A tag's busy check counts the active sessions of its own owner only.
CREATE INDEX sessions_active_owner_tag ON sessions(owner_id, tag_uid) WHERE status = 'active';
