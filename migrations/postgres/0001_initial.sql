-- Initial schema (PostgreSQL). Times are UTC milliseconds since the Unix epoch (BIGINT);
-- energy is integer Wh; tariff prices are decimal strings; billed money is integer minor
-- units of the session's currency, so sums are exact in SQL. Kept column-for-column equal
-- to migrations/sqlite/0001_initial.sql.

CREATE TABLE server_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE owners (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    list_version BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);

-- API tokens, stored as SHA-256 of the token; owner_id NULL is a platform admin token.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    owner_id   TEXT REFERENCES owners(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_owner ON api_tokens(owner_id);

CREATE TABLE tariffs (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES owners(id),
    currency       TEXT NOT NULL,
    energy_per_kwh TEXT NOT NULL,
    time_per_hour  TEXT NOT NULL,
    session_fee    TEXT NOT NULL,
    tax_rate       TEXT NOT NULL,
    is_default     BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
CREATE INDEX tariffs_owner ON tariffs(owner_id);
CREATE UNIQUE INDEX tariffs_one_default_per_owner ON tariffs(owner_id) WHERE is_default = 1;

-- Chargers. The MQTT password is stored only as its SHA-256 (it is 192 random bits, so a
-- slow hash adds nothing); the AES key is never stored: it is HKDF(server secret, id, key_version).
CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES owners(id),
    connectors    BIGINT NOT NULL,
    password_hash TEXT NOT NULL,
    key_version   BIGINT NOT NULL,
    tariff_id     TEXT REFERENCES tariffs(id),
    firmware      TEXT,
    model         TEXT,
    online        BIGINT NOT NULL DEFAULT 0,
    -- The broker connection that set online; a close only clears its own connection's flag.
    online_conn   BIGINT,
    last_seen     BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX devices_owner ON devices(owner_id);

CREATE TABLE connectors (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    connector  BIGINT NOT NULL,
    state      TEXT NOT NULL,
    error      TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, connector)
);

-- RFID tags. list_version is the owner's local-list version at the tag's last change.
CREATE TABLE tags (
    uid          TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES owners(id),
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    expires_at   BIGINT,
    group_name   TEXT,
    max_sessions BIGINT NOT NULL,
    label        TEXT,
    list_version BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tags_owner_version ON tags(owner_id, list_version);

-- The chargers a tag is limited to (none = all of its owner's chargers).
CREATE TABLE tag_devices (
    uid       TEXT NOT NULL REFERENCES tags(uid) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    PRIMARY KEY (uid, device_id)
);

-- Tombstones of deleted tags, so a charger's local list can be brought up to date by delta.
CREATE TABLE tag_removals (
    owner_id     TEXT NOT NULL,
    uid          TEXT NOT NULL,
    list_version BIGINT NOT NULL,
    PRIMARY KEY (owner_id, uid)
);

-- Tags refused at a charger because nobody knows them, for enrollment.
CREATE TABLE unknown_tags (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    uid        TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    attempts   BIGINT NOT NULL,
    PRIMARY KEY (device_id, uid)
);
CREATE INDEX unknown_tags_owner_seen ON unknown_tags(owner_id, last_seen);

-- Charging sessions with the tariff snapshot taken at start. owner_id is the owner that
-- bills the session (the charger's owner at start), unchanged by a later transfer.
CREATE TABLE sessions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id      TEXT NOT NULL REFERENCES devices(id),
    connector      BIGINT NOT NULL,
    owner_id       TEXT NOT NULL REFERENCES owners(id),
    tag_uid        TEXT NOT NULL,
    local_id       TEXT,
    status         TEXT NOT NULL,
    meter_start_wh BIGINT NOT NULL,
    meter_stop_wh  BIGINT,
    last_meter_wh  BIGINT NOT NULL,
    started_at     BIGINT NOT NULL,
    stopped_at     BIGINT,
    stop_reason    TEXT,
    tariff_id      TEXT,
    currency       TEXT NOT NULL,
    minor_units    BIGINT NOT NULL,
    energy_per_kwh TEXT NOT NULL,
    time_per_hour  TEXT NOT NULL,
    session_fee    TEXT NOT NULL,
    tax_rate       TEXT NOT NULL,
    energy_wh      BIGINT,
    net_minor      BIGINT,
    tax_minor      BIGINT,
    total_minor    BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX sessions_device_local_id ON sessions(device_id, local_id) WHERE local_id IS NOT NULL;
CREATE INDEX sessions_owner_started ON sessions(owner_id, started_at);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_device_started ON sessions(device_id, started_at);
CREATE INDEX sessions_tag_started ON sessions(tag_uid, started_at);
CREATE INDEX sessions_active_tag ON sessions(tag_uid) WHERE status = 'active';
CREATE INDEX sessions_active_device ON sessions(device_id, connector) WHERE status = 'active';

-- Cost lines of a billed session: exact amounts before the one rounding of net and tax.
CREATE TABLE session_cost_lines (
    session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    quantity   TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    amount     TEXT NOT NULL,
    PRIMARY KEY (session_id, kind)
);

CREATE TABLE meter_samples (
    session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    energy_wh  BIGINT NOT NULL,
    power_w    BIGINT,
    PRIMARY KEY (session_id, at)
);

-- Ownership transfer codes, stored as SHA-256 of the code.
CREATE TABLE claim_codes (
    code_hash  TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    to_owner   TEXT NOT NULL REFERENCES owners(id),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX claim_codes_device ON claim_codes(device_id);

-- The result of every MQTT request, so that a repeated (device, id) gets the same answer
-- and changes nothing. request_id is the id's JSON text (42 and "42" differ).
CREATE TABLE mqtt_requests (
    device_id  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    code       BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, request_id)
);
CREATE INDEX mqtt_requests_created ON mqtt_requests(created_at);
