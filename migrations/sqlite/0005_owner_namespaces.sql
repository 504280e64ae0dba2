-- Owner namespaces (docs/storage.md): a tag uid is unique per owner (the same card may be
-- enrolled by several owners, each enrollment independent), and so is a tariff id. Device
-- ids stay global: they are MQTT client ids.
--
-- SQLite cannot change a primary key in place: the tables are rebuilt, following SQLite's
-- documented procedure for schema changes. Migrations run with foreign keys off (so that
-- dropping the old table cascades nothing), and the server checks every foreign key
-- after they ran (store/sql.rs); the rename keeps every other table's references
-- pointing at the rebuilt table.

CREATE TABLE tariffs_new (
    id             TEXT NOT NULL,
    owner_id       TEXT NOT NULL REFERENCES owners(id),
    currency       TEXT NOT NULL,
    energy_per_kwh TEXT NOT NULL,
    time_per_hour  TEXT NOT NULL,
    session_fee    TEXT NOT NULL,
    tax_rate       TEXT NOT NULL,
    is_default     BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (owner_id, id)
);
INSERT INTO tariffs_new (id, owner_id, currency, energy_per_kwh, time_per_hour, session_fee,
                         tax_rate, is_default, created_at)
    SELECT id, owner_id, currency, energy_per_kwh, time_per_hour, session_fee, tax_rate,
           is_default, created_at
    FROM tariffs;
DROP TABLE tariffs;
ALTER TABLE tariffs_new RENAME TO tariffs;
CREATE UNIQUE INDEX tariffs_one_default_per_owner ON tariffs(owner_id) WHERE is_default = 1;

-- A device's tariff is one of its owner's.
CREATE TABLE devices_new (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES owners(id),
    connectors    BIGINT NOT NULL,
    password_hash TEXT NOT NULL,
    key_version   BIGINT NOT NULL,
    tariff_id     TEXT,
    firmware      TEXT,
    model         TEXT,
    online        BIGINT NOT NULL DEFAULT 0,
    online_conn   BIGINT,
    last_seen     BIGINT,
    created_at    BIGINT NOT NULL,
    list_reset    BIGINT NOT NULL DEFAULT 0,
    max_power_w   BIGINT NOT NULL DEFAULT 22000,
    FOREIGN KEY (owner_id, tariff_id) REFERENCES tariffs(owner_id, id)
);
INSERT INTO devices_new (id, owner_id, connectors, password_hash, key_version, tariff_id,
                         firmware, model, online, online_conn, last_seen, created_at,
                         list_reset, max_power_w)
    SELECT id, owner_id, connectors, password_hash, key_version, tariff_id, firmware, model,
           online, online_conn, last_seen, created_at, list_reset, max_power_w
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_owner ON devices(owner_id);

CREATE TABLE tags_new (
    uid          TEXT NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES owners(id),
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    expires_at   BIGINT,
    group_name   TEXT,
    max_sessions BIGINT NOT NULL,
    label        TEXT,
    list_version BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (owner_id, uid)
);
INSERT INTO tags_new (uid, owner_id, role, status, expires_at, group_name, max_sessions,
                      label, list_version, created_at, updated_at)
    SELECT uid, owner_id, role, status, expires_at, group_name, max_sessions, label,
           list_version, created_at, updated_at
    FROM tags;
CREATE TABLE tag_devices_new (
    owner_id  TEXT NOT NULL,
    uid       TEXT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    PRIMARY KEY (owner_id, uid, device_id),
    FOREIGN KEY (owner_id, uid) REFERENCES tags_new(owner_id, uid) ON DELETE CASCADE
);
INSERT INTO tag_devices_new (owner_id, uid, device_id)
    SELECT t.owner_id, td.uid, td.device_id FROM tag_devices td JOIN tags t ON t.uid = td.uid;
DROP TABLE tag_devices;
DROP TABLE tags;
ALTER TABLE tags_new RENAME TO tags;
ALTER TABLE tag_devices_new RENAME TO tag_devices;
CREATE INDEX tags_owner_version ON tags(owner_id, list_version);
CREATE INDEX tags_uid ON tags(uid);
CREATE INDEX tag_devices_device ON tag_devices(device_id);

-- A tag's busy check counts the active sessions of its own owner only.
CREATE INDEX sessions_active_owner_tag ON sessions(owner_id, tag_uid) WHERE status = 'active';
