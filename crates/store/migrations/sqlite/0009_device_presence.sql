-- The hardware model (vendor and model, as the summary and the `model` device filter show it)
-- and the presence the live event log last announced for each device.
--
-- `hw_model` is "<system manufacturer> <system product>" from the latest inventory (trimmed,
-- NULL when both are empty); devices that already have an inventory are filled in here.
ALTER TABLE devices ADD COLUMN hw_model TEXT;
UPDATE devices SET hw_model = (
    SELECT NULLIF(TRIM(
        TRIM(COALESCE(json_extract(i.document, '$.hardware.system.manufacturer'), '')) || ' ' ||
        TRIM(COALESCE(json_extract(i.document, '$.hardware.system.product'), ''))), '')
    FROM device_inventory i WHERE i.device_id = devices.id);
CREATE INDEX devices_hw_model ON devices(hw_model);
CREATE INDEX devices_os ON devices(os_name, os_version);

-- 1 = announced online, 0 = announced offline (new devices start offline, so their first
-- check-in is announced), NULL = not known yet: rows that existed before this migration are
-- settled silently by the first presence pass instead of announcing the whole fleet at once.
ALTER TABLE devices ADD COLUMN presence INTEGER DEFAULT 0;
UPDATE devices SET presence = NULL;
CREATE INDEX devices_presence ON devices(presence, last_seen_at);
