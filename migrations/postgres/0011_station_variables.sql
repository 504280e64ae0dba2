-- OCPP 2.0.1 device model (docs/ocpp.md). Kept column-for-column equal to
-- migrations/sqlite/0011_station_variables.sql.

-- The variables of a station's configuration the server uses and shows (heartbeat
-- interval, sampled measurands, phase rotation, authorization settings), as its base
-- report (NotifyReport) gave their Actual values. evse_id 0: the station as a whole.
CREATE TABLE station_variables (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    component  TEXT NOT NULL,
    evse_id    BIGINT NOT NULL,
    variable   TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, component, evse_id, variable)
);
