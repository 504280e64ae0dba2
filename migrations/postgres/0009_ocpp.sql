-- OCPP chargers (docs/ocpp.md). Kept column-for-column equal to
-- migrations/sqlite/0009_ocpp.sql.

-- The protocol a charger speaks, chosen at provisioning: mybox (the MQTT API), ocpp1.6.
-- An OCPP charger's password_hash is its HTTP Basic password's; it has no MQTT login.
ALTER TABLE devices ADD COLUMN protocol TEXT NOT NULL DEFAULT 'mybox';
