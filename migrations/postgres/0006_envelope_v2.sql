-- Envelope v2 (docs/mqtt-api.md): an owner may require it for a charger, after which a
-- v1 request (the key in clear) from it is refused with 401.
ALTER TABLE devices ADD COLUMN require_v2 BIGINT NOT NULL DEFAULT 0;
