-- Roles for each kind of client, each with only what it needs (docs/admin-guide.md, "Roles").
-- The migrating user owns the tables and is the only one who changes the schema. Login roles are
-- made members of these group roles:
--   ccat_daemon      the managers: reads and writes the catalogue
--   ccat_admin       topology, routes, retries, cancellations, audits (and staging requests)
--   ccat_runner      ccat-runner on compute and transfer nodes: only the operations of the batch
--                    job whose secret it presents, and the records those operations produce
--   ccat_instrument  the DAQ hook: registers files at its own site's SOURCE locations
DO $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['ccat_daemon', 'ccat_admin', 'ccat_runner', 'ccat_instrument'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = wanted) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create roles', wanted, current_user
                    USING HINT = format('ask a database superuser to run: CREATE ROLE %I NOLOGIN; then run ccat db migrate again', wanted);
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('ccat_admin', 'ccat_staging_admin', 'MEMBER') THEN
        BEGIN
            GRANT ccat_staging_admin TO ccat_admin;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- The runner's proof: the daemon writes the SHA-256 of a fresh random secret per batch job and puts
-- the secret in the job's environment only; the runner presents it as the session setting
-- ccat.job_secret. The job's secret stops working when the job ends.
ALTER TABLE batch_job ADD COLUMN runner_secret_digest text CHECK (runner_secret_digest ~ '^[0-9a-f]{64}$');
CREATE UNIQUE INDEX batch_job_runner_secret ON batch_job (runner_secret_digest) WHERE runner_secret_digest IS NOT NULL;

-- Which site's SOURCE locations an instrument login may register files at.
CREATE TABLE instrument_login (
    login_role name PRIMARY KEY,
    site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ccat_runner_job() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT id FROM batch_job
    WHERE coalesce(current_setting('ccat.job_secret', true), '') <> ''
      AND runner_secret_digest = encode(sha256(convert_to(current_setting('ccat.job_secret', true), 'UTF8')), 'hex')
      AND state IN ('PREPARED', 'SUBMITTING', 'PENDING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED')
$$;

-- Locations the current job's running operations work on: where they run, what they write to,
-- and the ends of their transfers.
CREATE FUNCTION ccat_runner_locations() RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT unnest(ARRAY[o.data_location_id, o.target_location_id, t.origin_location_id, t.destination_location_id,
                        a.origin_location_id, a.destination_location_id, j.origin_location_id, j.destination_location_id])
    FROM operation o
    LEFT JOIN data_transfer t ON t.id = o.data_transfer_id
    LEFT JOIN long_term_archive_transfer a ON a.id = o.long_term_archive_transfer_id
    LEFT JOIN staging_job j ON j.id = o.staging_job_id
    WHERE o.batch_job_id = ccat_runner_job() AND o.state = 'running'
$$;

-- The current job's running operations (for the records they may change).
CREATE FUNCTION ccat_runner_operations() RETURNS SETOF operation
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT * FROM operation WHERE batch_job_id = ccat_runner_job() AND state = 'running'
$$;

CREATE FUNCTION ccat_is_runner() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT pg_has_role(session_user, 'ccat_runner', 'MEMBER') $$;

-- Every operation of the current job, whatever its state (its log and throughput rows are written
-- as it finishes).
CREATE FUNCTION ccat_runner_job_operations() RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT id FROM operation WHERE batch_job_id = ccat_runner_job()
$$;

REVOKE ALL ON FUNCTION ccat_runner_job(), ccat_runner_locations(), ccat_runner_operations(), ccat_runner_job_operations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_runner_job(), ccat_runner_locations(), ccat_runner_operations(), ccat_runner_job_operations()
    TO ccat_runner, ccat_daemon, ccat_admin;

-- A checksum, once recorded, is never rewritten by a runner.
CREATE FUNCTION ccat_keep_checksum() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.checksum IS NOT NULL AND NEW.checksum IS DISTINCT FROM OLD.checksum AND ccat_is_runner() THEN
        RAISE EXCEPTION 'a runner may not change the recorded checksum of % %', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER raw_data_package_keep_checksum BEFORE UPDATE OF checksum ON raw_data_package FOR EACH ROW EXECUTE FUNCTION ccat_keep_checksum();
CREATE TRIGGER data_transfer_package_keep_checksum BEFORE UPDATE OF checksum ON data_transfer_package FOR EACH ROW EXECUTE FUNCTION ccat_keep_checksum();

-- The daemon and admins: the whole catalogue (not the schema).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO ccat_daemon, ccat_admin, ccat_runner, ccat_instrument', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO ccat_daemon, ccat_admin, ccat_runner, ccat_instrument;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ccat_daemon, ccat_admin;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ccat_daemon, ccat_admin;
-- The staging functions scientists call are the daemon's tools too (resolving a selection).
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ccat_daemon, ccat_admin;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM ccat_daemon, ccat_admin;
REVOKE INSERT, UPDATE, DELETE ON instrument_login FROM ccat_daemon;
-- Tables and sequences later migrations create (as the same owner) are theirs too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ccat_daemon, ccat_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ccat_daemon, ccat_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO ccat_daemon, ccat_admin;

-- The runner (docs/admin-guide.md lists why each is needed).
GRANT SELECT ON schema_migrations, site, data_location, disk_data_location, s3_data_location, tape_data_location,
    data_location_status, archive_policy, integrity_policy, executed_obs_unit, raw_data_file, raw_data_package,
    data_transfer_package, data_transfer, long_term_archive_transfer, staging_job, staging_job_package,
    physical_copy, integrity_run, integrity_finding, operation TO ccat_runner;
GRANT SELECT (id, scheduler, cluster, submit_token, scheduler_job_id, queue, data_location_id, operation_type, script_path,
    stdout_path, stderr_path, state, reason, exit_code, exit_signal, node, submit_attempts, created_at, submitted_at,
    started_at, ended_at, last_seen_at, updated_at) ON batch_job TO ccat_runner;
GRANT SELECT (id, status, uid, gid, username, selection, submitted_at) ON staging_request TO ccat_runner;
GRANT UPDATE (reason, updated_at) ON staging_request TO ccat_runner;
GRANT UPDATE (state, lease_owner, lease_expires_at, started_at, finished_at, updated_at, bytes_processed, result, log_path,
    last_error, error_class, attempts, next_attempt_at) ON operation TO ccat_runner;
GRANT INSERT (operation_id, data_transfer_id, log_path, summary) ON data_transfer_log TO ccat_runner;
GRANT INSERT (operation_id, operation_type, origin_location_id, destination_location_id, route_id, method, bytes, seconds,
    succeeded, error_class, log_path) ON transfer_attempt TO ccat_runner;
GRANT INSERT (data_location_id, measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message),
      UPDATE (measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message) ON data_location_status TO ccat_runner;
GRANT UPDATE (status, size_bytes, checksum, manifest, updated_at) ON raw_data_package TO ccat_runner;
GRANT UPDATE (status, size_bytes, checksum, updated_at) ON data_transfer_package TO ccat_runner;
GRANT UPDATE (status, attempts, started_at, finished_at, updated_at, error_message, bytes_transferred, unpack_status,
    unpack_attempts, unpack_error_message, unpacked_at) ON data_transfer TO ccat_runner;
GRANT UPDATE (status, attempts, started_at, finished_at, error_message, updated_at) ON long_term_archive_transfer TO ccat_runner;
GRANT UPDATE (status, attempts, started_at, finished_at, error_message, cleaned_at, updated_at) ON staging_job TO ccat_runner;
GRANT UPDATE (staged_at, staged_from_copy_id) ON staging_job_package TO ccat_runner;
GRANT INSERT (kind, raw_data_file_id, raw_data_package_id, data_transfer_package_id, data_location_id, staging_job_id,
    relative_path, size_bytes, checksum, verified_at),
      UPDATE (status, deleted_at, updated_at, fixity_checked_at) ON physical_copy TO ccat_runner;
GRANT INSERT (kind, data_location_id, operation_id, catalogued_copies),
      UPDATE (state, finished_at, message, checked_copies, checked_bytes, listed_objects, lost_count, corrupted_count,
              dark_count, stale_temporary_count, brake_limit) ON integrity_run TO ccat_runner;
GRANT INSERT (integrity_run_id, kind, physical_copy_id, relative_path, size_bytes, expected_size_bytes, found_checksum,
    modified_at, detail, quarantine_path),
      UPDATE (quarantine_path, resolved_at, resolution) ON integrity_finding TO ccat_runner;

-- The instrument: its site's topology to find the location, and the registration itself.
GRANT SELECT ON schema_migrations, site, data_location, disk_data_location, s3_data_location, tape_data_location,
    executed_obs_unit, instrument_module TO ccat_instrument;
GRANT INSERT (obs_id, source_name, start_time, end_time), UPDATE (source_name, start_time, end_time) ON executed_obs_unit TO ccat_instrument;
GRANT INSERT (instrument, name), UPDATE (instrument) ON instrument_module TO ccat_instrument;
GRANT SELECT, INSERT (filename, relative_path, size_bytes, checksum, checksum_algorithm, executed_obs_unit_id, instrument_module_id,
    source_location_id) ON raw_data_file TO ccat_instrument;
GRANT SELECT, INSERT (kind, raw_data_file_id, raw_data_package_id, data_transfer_package_id, data_location_id, staging_job_id,
    relative_path, size_bytes, checksum, verified_at) ON physical_copy TO ccat_instrument;

-- Row-level security: the daemon and admins see and change every row; the runner changes only
-- what its job's running operations work on; the instrument only its own site's SOURCE rows.
-- The owner is not subject to it (the migrations, and set-ups with a single database user).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['operation', 'physical_copy', 'raw_data_file', 'raw_data_package', 'data_transfer_package',
                             'data_transfer', 'long_term_archive_transfer', 'staging_job', 'staging_job_package',
                             'integrity_run', 'integrity_finding', 'data_location_status', 'transfer_attempt',
                             'data_transfer_log'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I TO ccat_daemon, ccat_admin USING (true) WITH CHECK (true)', t || '_managers', t);
    END LOOP;
END
$$;
CREATE POLICY staging_request_managers ON staging_request TO ccat_daemon, ccat_admin USING (true) WITH CHECK (true);

-- Runner: reads everything it was granted (safety checks look at other work), changes its own.
CREATE POLICY operation_runner_read ON operation FOR SELECT TO ccat_runner USING (true);
CREATE POLICY operation_runner_own ON operation FOR UPDATE TO ccat_runner
    USING (batch_job_id = ccat_runner_job()) WITH CHECK (batch_job_id = ccat_runner_job());
CREATE POLICY physical_copy_runner_read ON physical_copy FOR SELECT TO ccat_runner USING (true);
CREATE POLICY physical_copy_runner_insert ON physical_copy FOR INSERT TO ccat_runner
    WITH CHECK (data_location_id IN (SELECT ccat_runner_locations()));
-- A runner may mark a copy at its job's locations damaged, repaired or deleted; never an archive
-- copy deleted (that is for an admin).
CREATE POLICY physical_copy_runner_update ON physical_copy FOR UPDATE TO ccat_runner
    USING (data_location_id IN (SELECT ccat_runner_locations()))
    WITH CHECK (status <> 'DELETED' OR NOT EXISTS (
        SELECT 1 FROM data_location l WHERE l.id = data_location_id AND l.location_type = 'LONG_TERM_ARCHIVE'));
CREATE POLICY raw_data_file_runner_read ON raw_data_file FOR SELECT TO ccat_runner USING (true);
CREATE POLICY raw_data_package_runner_read ON raw_data_package FOR SELECT TO ccat_runner USING (true);
CREATE POLICY raw_data_package_runner_own ON raw_data_package FOR UPDATE TO ccat_runner
    USING (id IN (SELECT raw_data_package_id FROM ccat_runner_operations()));
CREATE POLICY data_transfer_package_runner_read ON data_transfer_package FOR SELECT TO ccat_runner USING (true);
CREATE POLICY data_transfer_package_runner_own ON data_transfer_package FOR UPDATE TO ccat_runner
    USING (id IN (SELECT data_transfer_package_id FROM ccat_runner_operations()));
CREATE POLICY data_transfer_runner_read ON data_transfer FOR SELECT TO ccat_runner USING (true);
CREATE POLICY data_transfer_runner_own ON data_transfer FOR UPDATE TO ccat_runner
    USING (id IN (SELECT data_transfer_id FROM ccat_runner_operations()));
CREATE POLICY long_term_archive_transfer_runner_read ON long_term_archive_transfer FOR SELECT TO ccat_runner USING (true);
CREATE POLICY long_term_archive_transfer_runner_own ON long_term_archive_transfer FOR UPDATE TO ccat_runner
    USING (id IN (SELECT long_term_archive_transfer_id FROM ccat_runner_operations()));
CREATE POLICY staging_job_runner_read ON staging_job FOR SELECT TO ccat_runner USING (true);
CREATE POLICY staging_job_runner_own ON staging_job FOR UPDATE TO ccat_runner
    USING (id IN (SELECT staging_job_id FROM ccat_runner_operations()));
CREATE POLICY staging_job_package_runner_read ON staging_job_package FOR SELECT TO ccat_runner USING (true);
CREATE POLICY staging_job_package_runner_own ON staging_job_package FOR UPDATE TO ccat_runner
    USING (staging_job_id IN (SELECT staging_job_id FROM ccat_runner_operations()));
CREATE POLICY staging_request_runner_read ON staging_request FOR SELECT TO ccat_runner USING (true);
CREATE POLICY staging_request_runner_reason ON staging_request FOR UPDATE TO ccat_runner
    USING (id IN (SELECT j.staging_request_id FROM staging_job j WHERE j.destination_location_id IN (SELECT ccat_runner_locations())));
CREATE POLICY integrity_run_runner_read ON integrity_run FOR SELECT TO ccat_runner USING (true);
CREATE POLICY integrity_run_runner_own ON integrity_run FOR ALL TO ccat_runner
    USING (operation_id IN (SELECT id FROM ccat_runner_operations()))
    WITH CHECK (operation_id IN (SELECT id FROM ccat_runner_operations()));
CREATE POLICY integrity_finding_runner_read ON integrity_finding FOR SELECT TO ccat_runner USING (true);
CREATE POLICY integrity_finding_runner_insert ON integrity_finding FOR INSERT TO ccat_runner
    WITH CHECK (integrity_run_id IN (SELECT r.id FROM integrity_run r WHERE r.operation_id IN (SELECT id FROM ccat_runner_operations())));
CREATE POLICY integrity_finding_runner_update ON integrity_finding FOR UPDATE TO ccat_runner
    USING (physical_copy_id IN (SELECT physical_copy_id FROM ccat_runner_operations())
           OR integrity_run_id IN (SELECT r.id FROM integrity_run r WHERE r.operation_id IN (SELECT id FROM ccat_runner_operations())));
CREATE POLICY data_location_status_runner_read ON data_location_status FOR SELECT TO ccat_runner USING (true);
CREATE POLICY data_location_status_runner_own ON data_location_status FOR ALL TO ccat_runner
    USING (data_location_id IN (SELECT ccat_runner_locations()))
    WITH CHECK (data_location_id IN (SELECT ccat_runner_locations()));
CREATE POLICY transfer_attempt_runner_insert ON transfer_attempt FOR INSERT TO ccat_runner
    WITH CHECK (operation_id IN (SELECT ccat_runner_job_operations()));
CREATE POLICY data_transfer_log_runner_insert ON data_transfer_log FOR INSERT TO ccat_runner
    WITH CHECK (operation_id IN (SELECT ccat_runner_job_operations()));

-- Instrument: rows at its own site's SOURCE locations only.
CREATE FUNCTION ccat_instrument_locations() RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT l.id FROM data_location l JOIN instrument_login i ON i.site_id = l.site_id
    WHERE i.login_role = session_user AND l.location_type = 'SOURCE'
$$;
REVOKE ALL ON FUNCTION ccat_instrument_locations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_instrument_locations() TO ccat_instrument;
CREATE POLICY raw_data_file_instrument ON raw_data_file TO ccat_instrument
    USING (source_location_id IN (SELECT ccat_instrument_locations()))
    WITH CHECK (source_location_id IN (SELECT ccat_instrument_locations()) AND raw_data_package_id IS NULL);
CREATE POLICY physical_copy_instrument ON physical_copy TO ccat_instrument
    USING (data_location_id IN (SELECT ccat_instrument_locations()))
    WITH CHECK (data_location_id IN (SELECT ccat_instrument_locations()) AND kind = 'RAW_DATA_FILE'
                AND raw_data_package_id IS NULL AND data_transfer_package_id IS NULL AND staging_job_id IS NULL);
