-- OCPP 2.0.1 registration (docs/ocpp.md). Kept column-for-column equal to
-- migrations/sqlite/0010_ocpp_registration.sql.

-- An OCPP 2.0.1 station's first BootNotification is answered Pending (the server reads its
-- configuration meanwhile); once registered, it is Accepted, and a station that reconnects
-- without booting is served.
ALTER TABLE devices ADD COLUMN ocpp_registered BIGINT NOT NULL DEFAULT 0;
