-- Batch job tracking: when the scheduler last reported a job (a job missing from its answers for
-- too long is LOST, never taken as finished), and the signal that ended it.
ALTER TABLE batch_job
    ADD COLUMN last_seen_at timestamptz,
    ADD COLUMN exit_signal integer,
    ADD COLUMN operation_type operation_type;

CREATE INDEX batch_job_created ON batch_job (created_at DESC);
