-- Charger API: a session started while the charger was offline (it carries a device-made
-- local_id) is recorded without the live authorization checks; this flag says so.
ALTER TABLE sessions ADD COLUMN offline BIGINT NOT NULL DEFAULT 0;
