-- Finding data and knowing the cost before asking (`ccat find`, `ccat stage request --dry-run`),
-- and where each staged package was read from (the staged directory's provenance file).

-- The archive copy a staging job read each package from.
ALTER TABLE staging_job_package ADD COLUMN staged_from_copy_id bigint REFERENCES physical_copy (id);

-- Observations for scientists, one row each, filtered by `filter`:
--   {"patterns": [obs_id glob, * and ?...], "instruments": [instrument or instrument/module...],
--    "from": timestamptz, "to": timestamptz, "archived_only": bool, "limit": int}
-- with their files, bytes and packages (only of the instruments asked for), how many packages have
-- a verified copy in an active long-term archive, and the sites holding every such package.
CREATE FUNCTION ccat_find_observations(filter jsonb)
RETURNS TABLE (obs_id text, source_name text, start_time timestamptz, end_time timestamptz, instruments text[],
               files integer, bytes bigint, packages integer, archived_packages integer, unpackaged_files integer,
               archive_sites text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH sel AS (
        SELECT ARRAY(SELECT replace(replace(replace(replace(replace(p, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
                     FROM jsonb_array_elements_text(coalesce(filter -> 'patterns', '[]')) AS p) AS patterns,
               ARRAY(SELECT jsonb_array_elements_text(coalesce(filter -> 'instruments', '[]'))) AS instruments,
               (filter ->> 'from')::timestamptz AS t_from, (filter ->> 'to')::timestamptz AS t_to,
               coalesce((filter ->> 'archived_only')::boolean, false) AS archived_only,
               least(greatest(coalesce((filter ->> 'limit')::int, 200), 1), 10000) AS max_rows
    ), files AS (
        SELECT o.id AS observation, f.raw_data_package_id, f.size_bytes, m.instrument
        FROM sel, executed_obs_unit o
        JOIN raw_data_file f ON f.executed_obs_unit_id = o.id
        LEFT JOIN instrument_module m ON m.id = f.instrument_module_id
        WHERE (cardinality(sel.patterns) = 0 OR o.obs_id LIKE ANY (sel.patterns))
          AND (sel.t_from IS NULL OR o.start_time >= sel.t_from)
          AND (sel.t_to IS NULL OR o.start_time < sel.t_to)
          AND (cardinality(sel.instruments) = 0
               OR m.instrument = ANY (sel.instruments) OR m.instrument || '/' || m.name = ANY (sel.instruments))
    ), archived AS (
        SELECT c.raw_data_package_id AS package, array_agg(DISTINCT s.short_name ORDER BY s.short_name) AS sites
        FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id JOIN site s ON s.id = l.site_id
        WHERE c.raw_data_package_id IN (SELECT raw_data_package_id FROM files)
          AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL AND c.staging_job_id IS NULL
          AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active
        GROUP BY c.raw_data_package_id
    ), per_observation AS (
        SELECT files.observation,
               array_remove(array_agg(DISTINCT files.instrument ORDER BY files.instrument), NULL) AS instruments,
               count(*)::int AS files, sum(files.size_bytes)::bigint AS bytes,
               count(DISTINCT files.raw_data_package_id)::int AS packages,
               count(DISTINCT files.raw_data_package_id) FILTER (WHERE a.package IS NOT NULL)::int AS archived_packages,
               count(*) FILTER (WHERE files.raw_data_package_id IS NULL)::int AS unpackaged_files
        FROM files LEFT JOIN archived a ON a.package = files.raw_data_package_id
        GROUP BY files.observation
    )
    SELECT o.obs_id, o.source_name, o.start_time, o.end_time, p.instruments, p.files, p.bytes, p.packages,
           p.archived_packages, p.unpackaged_files,
           -- Sites that hold every package of the observation.
           coalesce((SELECT array_agg(site ORDER BY site) FROM (
               SELECT unnest(a.sites) AS site FROM (SELECT DISTINCT raw_data_package_id FROM files WHERE observation = o.id) fp
               JOIN archived a ON a.package = fp.raw_data_package_id
               GROUP BY 1 HAVING count(*) = p.packages) AS complete), '{}')
    FROM sel, per_observation p JOIN executed_obs_unit o ON o.id = p.observation
    WHERE NOT sel.archived_only OR (p.unpackaged_files = 0 AND p.archived_packages = p.packages)
    ORDER BY o.start_time NULLS LAST, o.obs_id
    LIMIT (SELECT max_rows FROM sel)
$$;
REVOKE ALL ON FUNCTION ccat_find_observations(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_find_observations(jsonb) TO ccat_scientist;

-- Where staging into `destination` would read each package from: its verified copies in active
-- long-term archives, nearest first (the same order as the daemon's choice: the destination's
-- own site, then the location's priority). No paths: scientists see sites and locations only.
CREATE FUNCTION ccat_package_archives(package_ids bigint[], destination bigint)
RETURNS TABLE (package_id bigint, site text, location text, rank integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT c.raw_data_package_id, s.short_name, l.name,
           row_number() OVER (PARTITION BY c.raw_data_package_id
                              ORDER BY l.site_id = (SELECT site_id FROM data_location WHERE id = destination) DESC, l.priority, l.id)::int
    FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id JOIN site s ON s.id = l.site_id
    WHERE c.raw_data_package_id = ANY (package_ids) AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
      AND c.staging_job_id IS NULL AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active
    ORDER BY 1, 4
$$;
REVOKE ALL ON FUNCTION ccat_package_archives(bigint[], bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_package_archives(bigint[], bigint) TO ccat_scientist;

-- Recent staging throughput into a location (bytes per second of its last 20 finished STAGING
-- operations, all together), and how many there were; NULL when none finished in the last 30 days.
CREATE FUNCTION ccat_staging_throughput(destination bigint)
RETURNS TABLE (bytes_per_second double precision, operations integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT sum(bytes_processed)::double precision / nullif(sum(extract(epoch FROM finished_at - started_at)), 0),
           count(*)::int
    FROM (SELECT bytes_processed, started_at, finished_at FROM operation
          WHERE operation_type = 'STAGING' AND state = 'succeeded' AND data_location_id = destination
            AND bytes_processed > 0 AND started_at IS NOT NULL AND finished_at > now() - interval '30 days'
          ORDER BY finished_at DESC LIMIT 20) AS recent
$$;
REVOKE ALL ON FUNCTION ccat_staging_throughput(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_staging_throughput(bigint) TO ccat_scientist;
