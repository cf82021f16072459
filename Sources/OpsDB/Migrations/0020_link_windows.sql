-- Bandwidth windows: a link may carry at most max_bits_per_second between two times of day in a
-- time zone (ends before starts: the window spans midnight). The cap is shared by the link's
-- transfer jobs running at the time; where windows overlap the lowest cap holds.
CREATE TABLE link_window (
    id bigserial PRIMARY KEY,
    origin_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    destination_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    starts time NOT NULL,
    ends time NOT NULL,
    timezone text NOT NULL,
    max_bits_per_second bigint NOT NULL CHECK (max_bits_per_second > 0),
    CHECK (starts <> ends),
    CHECK (origin_site_id <> destination_site_id)
);
CREATE INDEX link_window_link ON link_window (origin_site_id, destination_site_id);

-- The cap in force on a link now, or NULL.
CREATE FUNCTION ccat_link_rate_cap(origin bigint, destination bigint, at timestamptz DEFAULT now()) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT min(w.max_bits_per_second) FROM link_window w
    WHERE w.origin_site_id = origin AND w.destination_site_id = destination
      AND CASE WHEN w.starts < w.ends
               THEN (at AT TIME ZONE w.timezone)::time >= w.starts AND (at AT TIME ZONE w.timezone)::time < w.ends
               ELSE (at AT TIME ZONE w.timezone)::time >= w.starts OR (at AT TIME ZONE w.timezone)::time < w.ends END
$$;

-- The batch jobs carrying a link's transfers now (submitted or running): what the link
-- optimizer's limit bounds, and what a cap is divided among. One definition for the dispatcher,
-- `ccat status` and the share below.
CREATE FUNCTION ccat_link_transfer_jobs(origin bigint, destination bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(DISTINCT o.batch_job_id)::int FROM operation o JOIN data_transfer t ON t.id = o.data_transfer_id
    JOIN data_location a ON a.id = t.origin_location_id JOIN data_location b ON b.id = t.destination_location_id
    WHERE o.operation_type = 'DATA_TRANSFER' AND o.state IN ('submitted', 'running') AND o.batch_job_id IS NOT NULL
      AND a.site_id = origin AND b.site_id = destination
$$;

-- A transfer's share of its link's cap in force now, in bits per second: the cap divided among
-- the link's transfer jobs (this one's included); NULL when no cap holds. Runners may not read
-- other jobs' operations, so the count is made with the owner's rights.
CREATE FUNCTION ccat_link_rate_share(transfer bigint) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT ccat_link_rate_cap(a.site_id, b.site_id) / greatest(1, ccat_link_transfer_jobs(a.site_id, b.site_id))
    FROM data_transfer t JOIN data_location a ON a.id = t.origin_location_id JOIN data_location b ON b.id = t.destination_location_id
    WHERE t.id = transfer
$$;
REVOKE ALL ON FUNCTION ccat_link_rate_share(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_link_rate_share(bigint) TO ccat_runner, ccat_daemon, ccat_admin;
