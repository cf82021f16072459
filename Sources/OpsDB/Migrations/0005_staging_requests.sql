-- Scientists' staging requests.
--
-- A scientist connects with their own database login (a member of ccat_scientist), inserts a
-- request carrying a munge credential, and reads back only their own requests. The daemon, as the
-- owner of the tables, decodes the credential (uid, gid, expiry, replay), checks that the munge
-- user is the database user who submitted it and that one of their unix groups may stage into the
-- location, and turns the request into staging jobs.

-- Who may stage into a PROCESSING location, and how much each user may hold there at once.
CREATE TABLE processing_policy (
    data_location_id bigint PRIMARY KEY REFERENCES data_location (id) ON DELETE CASCADE,
    -- Unix groups whose members may stage here; empty: nobody (the safe default).
    allowed_groups text[] NOT NULL DEFAULT '{}',
    -- Bytes one user's open requests may hold here; NULL: no limit.
    quota_bytes_per_user bigint CHECK (quota_bytes_per_user > 0)
);

-- The database login that inserted the request; the daemon rejects a credential of another user.
ALTER TABLE staging_request ADD COLUMN submitted_by name NOT NULL DEFAULT session_user;
-- A credential is used once: a second request with the same one is a replay.
-- (md5 only to index it: a match is confirmed by comparing the credentials themselves.)
ALTER TABLE staging_request ADD COLUMN credential_digest text GENERATED ALWAYS AS (md5(credential)) STORED;
ALTER TABLE staging_request ADD COLUMN package_count integer CHECK (package_count >= 0);
ALTER TABLE staging_request ADD COLUMN total_bytes bigint CHECK (total_bytes >= 0);
ALTER TABLE staging_request ADD CONSTRAINT staging_request_selection_object CHECK (jsonb_typeof(selection) = 'object');
CREATE INDEX staging_request_credential ON staging_request (credential_digest);
CREATE INDEX staging_request_submitter ON staging_request (submitted_by, id);
-- Requests the daemon still has to act on (decode, wait for archiving, stage, expire, clean up).
CREATE INDEX staging_request_active ON staging_request (id)
    WHERE status IN ('SUBMITTED', 'ACCEPTED', 'STAGING', 'READY');

-- Progress inside a staging job: the runner stamps each package as it lands.
ALTER TABLE staging_job_package ADD COLUMN staged_at timestamptz;
-- Set once the deletion manager removed the job's directory (its request ended).
ALTER TABLE staging_job ADD COLUMN cleaned_at timestamptz;

-- Roles ------------------------------------------------------------------------------------------
-- Nobody but the owner creates objects in the schema the owner's functions search (PostgreSQL 15
-- made this the default; older servers granted CREATE to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Roles belong to the whole PostgreSQL cluster: create them once, and say what to do when the
-- migrating user may not.
DO $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['ccat_scientist', 'ccat_staging_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = wanted) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database of this cluster
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create roles', wanted, current_user
                    USING HINT = format('ask a database superuser to run: CREATE ROLE %I NOLOGIN; then run ccat db migrate again', wanted);
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('ccat_staging_admin', 'ccat_scientist', 'MEMBER') THEN
        BEGIN
            GRANT ccat_scientist TO ccat_staging_admin;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- Scientists insert into the inbox (only these columns) and read their own rows.
GRANT INSERT (credential, selection, destination_location_id) ON staging_request TO ccat_scientist;
GRANT SELECT (id, public_id, selection, destination_location_id, uid, gid, username, status, reason, submitted_at,
              updated_at, ready_at, released_at, expires_at, submitted_by, package_count, total_bytes)
    ON staging_request TO ccat_scientist;
ALTER TABLE staging_request ENABLE ROW LEVEL SECURITY;
CREATE POLICY staging_request_read_own ON staging_request FOR SELECT TO ccat_scientist
    USING (submitted_by = session_user OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER'));
CREATE POLICY staging_request_submit_own ON staging_request FOR INSERT TO ccat_scientist
    WITH CHECK (submitted_by = session_user AND status = 'SUBMITTED' AND uid IS NULL AND gid IS NULL AND username IS NULL);
-- The catalogue: one row per raw data package, with where it is archived.
CREATE VIEW staging_catalogue AS
SELECT p.id AS package_id, p.name AS package, o.obs_id, o.source_name, o.start_time, o.end_time,
       coalesce((SELECT array_agg(DISTINCT m.instrument ORDER BY m.instrument)
                 FROM raw_data_file f JOIN instrument_module m ON m.id = f.instrument_module_id
                 WHERE f.raw_data_package_id = p.id), '{}') AS instruments,
       p.status::text AS package_status, p.size_bytes, p.created_at,
       (SELECT count(DISTINCT l.site_id)::int FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
        WHERE c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
          AND c.staging_job_id IS NULL AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active) AS archive_sites
FROM raw_data_package p JOIN executed_obs_unit o ON o.id = p.executed_obs_unit_id;

-- Observations, with how much of them is packaged and archived.
CREATE VIEW staging_observation AS
SELECT o.id AS executed_obs_unit_id, o.obs_id, o.source_name, o.start_time, o.end_time,
       coalesce((SELECT array_agg(DISTINCT m.instrument ORDER BY m.instrument)
                 FROM raw_data_file f JOIN instrument_module m ON m.id = f.instrument_module_id
                 WHERE f.executed_obs_unit_id = o.id), '{}') AS instruments,
       (SELECT count(*)::int FROM raw_data_file f WHERE f.executed_obs_unit_id = o.id) AS files,
       (SELECT count(*)::int FROM raw_data_file f WHERE f.executed_obs_unit_id = o.id AND f.raw_data_package_id IS NULL) AS unpackaged_files,
       (SELECT coalesce(sum(f.size_bytes), 0)::bigint FROM raw_data_file f WHERE f.executed_obs_unit_id = o.id) AS bytes
FROM executed_obs_unit o;

-- PROCESSING locations a request may name, with their rules.
CREATE VIEW staging_location AS
SELECT l.id, l.name, s.short_name AS site, l.active, d.root_path,
       coalesce(p.allowed_groups, '{}') AS allowed_groups, p.quota_bytes_per_user,
       extract(epoch FROM l.retention)::bigint AS retention_seconds
FROM data_location l JOIN site s ON s.id = l.site_id
LEFT JOIN disk_data_location d ON d.data_location_id = l.id
LEFT JOIN processing_policy p ON p.data_location_id = l.id
WHERE l.location_type = 'PROCESSING';

-- Progress of the caller's requests (everyone's for staging admins).
CREATE VIEW staging_request_progress WITH (security_barrier) AS
SELECT r.id AS staging_request_id,
       count(jp.raw_data_package_id)::int AS packages,
       count(jp.staged_at)::int AS packages_staged,
       coalesce(sum(p.size_bytes), 0)::bigint AS bytes,
       coalesce(sum(p.size_bytes) FILTER (WHERE jp.staged_at IS NOT NULL), 0)::bigint AS bytes_staged,
       min(j.started_at) AS started_at,
       max(jp.staged_at) AS last_staged_at
FROM staging_request r
LEFT JOIN staging_job j ON j.staging_request_id = r.id
LEFT JOIN staging_job_package jp ON jp.staging_job_id = j.id
LEFT JOIN raw_data_package p ON p.id = jp.raw_data_package_id
WHERE r.submitted_by = session_user OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER')
GROUP BY r.id;

-- Whether the staging manager is alive, so the command line can say when the daemon is down.
CREATE VIEW staging_service AS
SELECT service_name, instance, host, status::text AS status, is_leader, last_heartbeat_at
FROM service_heartbeat WHERE service_name = 'staging-manager';

GRANT SELECT ON staging_catalogue, staging_observation, staging_location, staging_request_progress, staging_service
    TO ccat_scientist;

-- Cancelling and releasing: only the submitter (or a staging admin), only from the states where it
-- means something. Both wake the daemon.
CREATE FUNCTION ccat_end_staging_request(request bigint, wanted staging_request_status) RETURNS staging_request_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    row staging_request%ROWTYPE;
BEGIN
    SELECT * INTO row FROM staging_request WHERE id = request FOR UPDATE;
    IF NOT FOUND OR NOT (row.submitted_by = session_user OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'staging request % does not exist or is not yours', request USING ERRCODE = 'no_data_found',
            HINT = 'ccat stage list shows your requests';
    END IF;
    IF wanted = 'CANCELLED' AND row.status = 'READY' THEN
        RAISE EXCEPTION 'staging request % is READY and can no longer be cancelled', request
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'its data is staged: release it with ccat stage release';
    ELSIF wanted = 'CANCELLED' AND row.status NOT IN ('SUBMITTED', 'ACCEPTED', 'STAGING') THEN
        RAISE EXCEPTION 'staging request % is % and can no longer be cancelled', request, row.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF wanted = 'RELEASED' AND row.status IN ('SUBMITTED', 'ACCEPTED', 'STAGING') THEN
        RAISE EXCEPTION 'staging request % is % and cannot be released', request, row.status
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'it is not ready yet: cancel it with ccat stage cancel';
    ELSIF wanted = 'RELEASED' AND row.status NOT IN ('READY', 'FAILED') THEN
        RAISE EXCEPTION 'staging request % is % and cannot be released', request, row.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF wanted NOT IN ('CANCELLED', 'RELEASED') THEN
        RAISE EXCEPTION 'a request can only be cancelled or released' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE staging_request SET status = wanted, updated_at = now(),
        released_at = CASE WHEN wanted = 'RELEASED' THEN now() ELSE released_at END,
        reason = CASE WHEN wanted = 'CANCELLED' THEN format('cancelled by %s', session_user) ELSE reason END
    WHERE id = request;
    PERFORM pg_notify('ccat_work', 'staging_request');
    RETURN wanted;
END
$$;
REVOKE ALL ON FUNCTION ccat_end_staging_request(bigint, staging_request_status) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_end_staging_request(bigint, staging_request_status) TO ccat_scientist;

-- A new request wakes the daemon at once.
CREATE FUNCTION ccat_notify_staging_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ccat_work', 'staging_request');
    RETURN NULL;
END
$$;
CREATE TRIGGER staging_request_notify AFTER INSERT ON staging_request
    FOR EACH STATEMENT EXECUTE FUNCTION ccat_notify_staging_request();

-- What a selection names, one row per raw data package (package_id NULL: files not packaged yet).
-- A selection is {"observations": [obs_id...], "packages": [name...], "instruments": [instrument or
-- instrument/module...], "from": timestamptz, "to": timestamptz}: the files of the named
-- observations and packages (all files when neither is given), limited to the instruments and to
-- observations that started in [from, to). Shared by the command line's checks and the daemon.
CREATE FUNCTION ccat_resolve_selection(selection jsonb)
RETURNS TABLE (package_id bigint, package text, obs_id text, files integer, bytes bigint, package_status text,
               package_bytes bigint, archive_sites integer, package_created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH sel AS (
        SELECT ARRAY(SELECT jsonb_array_elements_text(coalesce(selection -> 'observations', '[]'))) AS observations,
               ARRAY(SELECT jsonb_array_elements_text(coalesce(selection -> 'packages', '[]'))) AS packages,
               ARRAY(SELECT jsonb_array_elements_text(coalesce(selection -> 'instruments', '[]'))) AS instruments,
               (selection ->> 'from')::timestamptz AS t_from, (selection ->> 'to')::timestamptz AS t_to
    ), candidates AS (
        SELECT f.id FROM sel, raw_data_file f
        WHERE f.executed_obs_unit_id IN (SELECT o.id FROM executed_obs_unit o WHERE o.obs_id = ANY (sel.observations))
        UNION
        SELECT f.id FROM sel, raw_data_file f
        WHERE f.raw_data_package_id IN (SELECT p.id FROM raw_data_package p WHERE p.name = ANY (sel.packages))
        UNION
        SELECT f.id FROM sel, raw_data_file f
        WHERE cardinality(sel.observations) = 0 AND cardinality(sel.packages) = 0
          AND f.executed_obs_unit_id IN (SELECT o.id FROM executed_obs_unit o
                                        WHERE (sel.t_from IS NULL OR o.start_time >= sel.t_from)
                                          AND (sel.t_to IS NULL OR o.start_time < sel.t_to))
    ), files AS (
        SELECT f.raw_data_package_id, f.size_bytes, o.obs_id
        FROM sel, candidates c JOIN raw_data_file f ON f.id = c.id JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id
        WHERE (cardinality(sel.instruments) = 0
               OR EXISTS (SELECT 1 FROM instrument_module m WHERE m.id = f.instrument_module_id
                          AND (m.instrument = ANY (sel.instruments) OR m.instrument || '/' || m.name = ANY (sel.instruments))))
          AND (sel.t_from IS NULL OR o.start_time >= sel.t_from)
          AND (sel.t_to IS NULL OR o.start_time < sel.t_to)
    )
    SELECT files.raw_data_package_id, p.name, min(files.obs_id), count(*)::int, sum(files.size_bytes)::bigint,
           p.status::text, p.size_bytes,
           (SELECT count(DISTINCT l.site_id)::int FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
            WHERE c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
              AND c.staging_job_id IS NULL AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active),
           p.created_at
    FROM files LEFT JOIN raw_data_package p ON p.id = files.raw_data_package_id
    GROUP BY files.raw_data_package_id, p.id
    ORDER BY p.name NULLS LAST
$$;
REVOKE ALL ON FUNCTION ccat_resolve_selection(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_resolve_selection(jsonb) TO ccat_scientist;

-- How long packages have recently taken from creation to their first verified archive copy
-- (median of the last 500), to say when data not archived yet is expected.
CREATE FUNCTION ccat_archive_latency() RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM (
        SELECT extract(epoch FROM min(c.verified_at) - p.created_at) AS seconds
        FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
        JOIN raw_data_package p ON p.id = c.raw_data_package_id
        WHERE l.location_type = 'LONG_TERM_ARCHIVE' AND c.verified_at IS NOT NULL AND c.staging_job_id IS NULL
        GROUP BY p.id ORDER BY p.id DESC LIMIT 500
    ) recent
$$;
GRANT EXECUTE ON FUNCTION ccat_archive_latency() TO ccat_scientist;
