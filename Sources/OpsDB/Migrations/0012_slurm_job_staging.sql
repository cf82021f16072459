-- Staging for a Slurm job: the burst-buffer script (etc/slurm/burst_buffer.lua), running as the
-- Slurm user, asks for the data of a job's `#BB_LUA ccat stage ...` directive on behalf of the job's
-- owner. The daemon accepts such a request only from the Slurm user's munge credential, and only
-- after Slurm confirms that the job exists, is the owner's and carries the directive.
ALTER TABLE staging_request ADD COLUMN slurm_job_id bigint CHECK (slurm_job_id > 0);
-- The directive said `keep`: the job's end does not release the data.
ALTER TABLE staging_request ADD COLUMN keep_after_job boolean NOT NULL DEFAULT false;
CREATE INDEX staging_request_slurm_job ON staging_request (slurm_job_id) WHERE slurm_job_id IS NOT NULL;

GRANT INSERT (slurm_job_id, keep_after_job) ON staging_request TO ccat_scientist;
GRANT SELECT (slurm_job_id, keep_after_job) ON staging_request TO ccat_scientist;

-- `ccat stage request --slurm-dependency`: the daemon submits a tiny held job for the request (its
-- sentinel), releases it when the request is READY and cancels it when the request ends otherwise,
-- so that `sbatch --dependency=afterok:<sentinel>` starts a job only once its data is there.
ALTER TABLE staging_request ADD COLUMN slurm_dependency boolean NOT NULL DEFAULT false;
ALTER TABLE staging_request ADD COLUMN sentinel_job_id bigint;
ALTER TABLE staging_request ADD COLUMN sentinel_state text CHECK (sentinel_state IN ('HELD', 'RELEASED', 'CANCELLED'));
CREATE INDEX staging_request_sentinel ON staging_request (id) WHERE sentinel_state = 'HELD';

GRANT INSERT (slurm_dependency) ON staging_request TO ccat_scientist;
GRANT SELECT (slurm_dependency, sentinel_job_id, sentinel_state) ON staging_request TO ccat_scientist;

-- A request made for a job's owner (by the Slurm user) is also the owner's: they see it, follow it
-- with `ccat stage status`, and release it (a directive with `keep`) or cancel it. The owner is the
-- account the daemon staged for (`username`), whose database login has the same name.
DROP POLICY staging_request_read_own ON staging_request;
CREATE POLICY staging_request_read_own ON staging_request FOR SELECT TO ccat_scientist
    USING (submitted_by = session_user OR username = session_user OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER'));

CREATE OR REPLACE VIEW staging_request_progress WITH (security_barrier) AS
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
WHERE r.submitted_by = session_user OR r.username = session_user OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER')
GROUP BY r.id;

CREATE OR REPLACE FUNCTION ccat_end_staging_request(request bigint, wanted staging_request_status) RETURNS staging_request_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    row staging_request%ROWTYPE;
BEGIN
    SELECT * INTO row FROM staging_request WHERE id = request FOR UPDATE;
    IF NOT FOUND OR NOT (row.submitted_by = session_user OR row.username = session_user
                         OR pg_has_role(session_user, 'ccat_staging_admin', 'MEMBER')) THEN
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
