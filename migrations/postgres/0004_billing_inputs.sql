-- Billing inputs a meter cannot produce (docs/mqtt-api.md, "Billing inputs").
-- A connector's rated power bounds the energy a session may report for its elapsed time;
-- 22 kW is the default for chargers provisioned before it was a setting.
ALTER TABLE devices ADD COLUMN max_power_w BIGINT NOT NULL DEFAULT 22000;
-- Why a session is disputed (status 'disputed': an offline replay with readings no meter
-- can produce; billed nothing until an operator resolves it).
ALTER TABLE sessions ADD COLUMN dispute TEXT;
-- The time of the latest meter sample, so samples and the stop keep time order.
ALTER TABLE sessions ADD COLUMN last_sample_at BIGINT;
