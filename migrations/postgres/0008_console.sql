-- The console for daily use (docs/console.md). Kept column-for-column equal to
-- migrations/sqlite/0008_console.sql.

-- A charger's events, for its history page: connections and disconnections, connector
-- status changes (with their error codes). Kept as long as the request log
-- (CHARGER_REQUEST_LOG_DAYS).
CREATE TABLE device_events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX device_events_device ON device_events(device_id, at);
CREATE INDEX audit_log_device_at ON audit_log(device_id, at);
CREATE INDEX device_events_at ON device_events(at);
CREATE INDEX connectors_error ON connectors(updated_at) WHERE error IS NOT NULL;
CREATE INDEX mqtt_requests_device ON mqtt_requests(device_id, created_at);
