-- A device's runnable runs are looked up by device, state and not_before (every check-in asks
-- whether the device has one; a check-in then claims them). With only (device_id, state) the
-- planner preferred job_runs_state (state, not_before) — during a fan-out that index holds
-- every queued run of every device, so each check-in scanned thousands of other devices' runs.
DROP INDEX job_runs_device_state;
CREATE INDEX job_runs_device_state ON job_runs(device_id, state, not_before);
