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
