-- The runner: where an operation writes (the buffer a package is built in), operations run by hand
-- with `ccat-runner exec` (running, leased, without a batch job), and per-operation log files.
ALTER TABLE operation ADD COLUMN target_location_id bigint REFERENCES data_location (id);
ALTER TABLE operation DROP CONSTRAINT operation_check1;
ALTER TABLE operation ADD CONSTRAINT operation_submitted_has_job CHECK (state <> 'submitted' OR batch_job_id IS NOT NULL);
ALTER TABLE operation ADD CONSTRAINT operation_running_has_owner CHECK (state <> 'running' OR lease_owner IS NOT NULL);
