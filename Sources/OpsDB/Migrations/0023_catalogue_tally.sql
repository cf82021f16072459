-- Counts and bytes of the catalogue by state, kept as rows change, so that `ccat status`, the
-- status page and /metrics cost the same at a hundred million files as at ten. Before, every
-- scrape counted the whole catalogue: 8 s at ten million files.
--
-- Statement triggers append what each statement changed (+1 and the bytes for a row as it is now,
-- -1 and minus the bytes for a row as it was) to catalogue_tally. Nobody updates a row of it, so
-- concurrent writers never wait for each other; a figure is the sum of its rows. The monitoring
-- manager folds the rows into one per figure now and then (ccat_fold_catalogue_tally), and
-- ccat_recount_catalogue_tally() counts everything afresh (after a restore, or a bulk load with
-- triggers off). Only these functions write it.
CREATE TABLE catalogue_tally (
    -- raw_data_file, raw_data_package, package_archive_sites, data_transfer_package,
    -- data_transfer, unpacking, long_term_archive_transfer, physical_copy
    subject text NOT NULL,
    -- The row's status ('' for files; the number of archive sites for package_archive_sites).
    state text NOT NULL,
    -- physical_copy only: where, and what kind of copy (0 and '' for the others).
    data_location_id bigint NOT NULL,
    kind text NOT NULL,
    row_count bigint NOT NULL,
    byte_count bigint NOT NULL
);
REVOKE INSERT, UPDATE, DELETE ON catalogue_tally FROM ccat_daemon, ccat_admin;

-- Each package's number of sites holding a present, verified copy in a LONG_TERM_ARCHIVE
-- location, kept as its copies change: 'archived at every site' becomes a figure of the tally,
-- not a pass over every archive copy.
ALTER TABLE raw_data_package ADD COLUMN archive_sites smallint NOT NULL DEFAULT 0;

-- What archive_sites should say, for packages with at least one such copy: the one definition the
-- trigger, the recount and `ccat db recount --check` share. A condition on raw_data_package_id
-- reaches the copies' index through the grouping.
CREATE VIEW package_archive_sites_held AS
SELECT c.raw_data_package_id, count(DISTINCT l.site_id)::smallint AS sites
FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
WHERE c.raw_data_package_id IS NOT NULL AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
  AND l.location_type = 'LONG_TERM_ARCHIVE'
GROUP BY c.raw_data_package_id;
REVOKE INSERT, UPDATE, DELETE ON package_archive_sites_held FROM ccat_daemon, ccat_admin;

CREATE FUNCTION ccat_count_archive_sites(packages bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF cardinality(packages) = 0 THEN
        RETURN;
    END IF;
    -- Locked in id order first: two transactions changing copies of the same package count one
    -- after the other, and the second (a new statement, a new snapshot) sees what the first committed.
    PERFORM 1 FROM raw_data_package WHERE id = ANY(packages) ORDER BY id FOR NO KEY UPDATE;
    UPDATE raw_data_package p SET archive_sites = held.sites
    FROM (
        SELECT q.id, coalesce((SELECT h.sites FROM package_archive_sites_held h WHERE h.raw_data_package_id = q.id), 0) AS sites
        FROM unnest(packages) AS q(id)
    ) held
    WHERE p.id = held.id AND p.archive_sites <> held.sites;
END
$$;

CREATE FUNCTION ccat_archive_sites_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ccat_count_archive_sites(ARRAY(
            SELECT DISTINCT n.raw_data_package_id FROM new_rows n JOIN data_location l ON l.id = n.data_location_id
            WHERE n.raw_data_package_id IS NOT NULL AND l.location_type = 'LONG_TERM_ARCHIVE'
              AND n.status = 'PRESENT' AND n.verified_at IS NOT NULL));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM ccat_count_archive_sites(ARRAY(
            SELECT DISTINCT o.raw_data_package_id FROM old_rows o JOIN data_location l ON l.id = o.data_location_id
            WHERE o.raw_data_package_id IS NOT NULL AND l.location_type = 'LONG_TERM_ARCHIVE'
              AND o.status = 'PRESENT' AND o.verified_at IS NOT NULL));
    ELSE
        -- Only what changes the count: status, verification, place or package of an archive copy
        -- (a fixity pass touching millions of copies changes none of them).
        PERFORM ccat_count_archive_sites(ARRAY(
            SELECT DISTINCT p.id FROM new_rows n JOIN old_rows o ON o.id = n.id,
                LATERAL (VALUES (n.raw_data_package_id), (o.raw_data_package_id)) p(id)
            WHERE p.id IS NOT NULL
              AND (n.status, n.verified_at IS NULL, n.data_location_id, n.raw_data_package_id)
                  IS DISTINCT FROM (o.status, o.verified_at IS NULL, o.data_location_id, o.raw_data_package_id)
              AND EXISTS (SELECT 1 FROM data_location l WHERE l.id IN (n.data_location_id, o.data_location_id)
                          AND l.location_type = 'LONG_TERM_ARCHIVE')));
    END IF;
    RETURN NULL;
END
$$;

-- What each table's rows count as: (subject, state, data_location_id, kind, bytes) per row of
-- {rows}, the table itself when recounting or a statement's transition table in its trigger. The
-- sizes of bundles and packages are final before transfers of them exist, so a transfer's figure
-- does not change behind its back.
CREATE TABLE catalogue_tally_source (
    source_table text PRIMARY KEY,
    shape text NOT NULL
);
REVOKE ALL ON catalogue_tally_source FROM ccat_daemon, ccat_admin;
INSERT INTO catalogue_tally_source VALUES
    ('raw_data_file', $$
        SELECT 'raw_data_file' AS subject, '' AS state, 0::bigint AS data_location_id, '' AS kind, r.size_bytes AS bytes FROM {rows} r $$),
    ('raw_data_package', $$
        SELECT 'raw_data_package' AS subject, r.status::text AS state, 0::bigint AS data_location_id, '' AS kind,
               coalesce(r.size_bytes, 0) AS bytes FROM {rows} r
        UNION ALL
        SELECT 'package_archive_sites', r.archive_sites::text, 0, '', 0 FROM {rows} r $$),
    ('data_transfer_package', $$
        SELECT 'data_transfer_package' AS subject, r.status::text AS state, 0::bigint AS data_location_id, '' AS kind,
               coalesce(r.size_bytes, 0) AS bytes FROM {rows} r $$),
    ('data_transfer', $$
        SELECT 'data_transfer' AS subject, r.status::text AS state, 0::bigint AS data_location_id, '' AS kind,
               coalesce(r.bytes_transferred, 0) AS bytes FROM {rows} r
        UNION ALL
        SELECT 'unpacking', r.unpack_status::text, 0, '', coalesce(b.size_bytes, 0)
        FROM {rows} r JOIN data_transfer_package b ON b.id = r.data_transfer_package_id WHERE r.status = 'COMPLETED' $$),
    ('long_term_archive_transfer', $$
        SELECT 'long_term_archive_transfer' AS subject, r.status::text AS state, 0::bigint AS data_location_id, '' AS kind,
               coalesce(p.size_bytes, 0) AS bytes
        FROM {rows} r JOIN raw_data_package p ON p.id = r.raw_data_package_id $$),
    ('physical_copy', $$
        SELECT 'physical_copy' AS subject, r.status::text AS state, r.data_location_id, r.kind::text AS kind,
               coalesce(r.size_bytes, 0) AS bytes FROM {rows} r $$);

-- One trigger function per table, made from its shape: static SQL, so its plans are cached.
DO $do$
DECLARE
    source record;
    insert_into constant text := 'INSERT INTO catalogue_tally (subject, state, data_location_id, kind, row_count, byte_count) ';
BEGIN
    FOR source IN SELECT * FROM catalogue_tally_source LOOP
        EXECUTE format($f$
            CREATE FUNCTION %1$I() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $body$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    %2$s SELECT subject, state, data_location_id, kind, count(*), coalesce(sum(bytes), 0)
                    FROM (%3$s) d GROUP BY 1, 2, 3, 4;
                ELSIF TG_OP = 'DELETE' THEN
                    %2$s SELECT subject, state, data_location_id, kind, -count(*), -coalesce(sum(bytes), 0)
                    FROM (%4$s) d GROUP BY 1, 2, 3, 4;
                ELSE
                    %2$s SELECT subject, state, data_location_id, kind, sum(n), sum(b) FROM (
                        SELECT subject, state, data_location_id, kind, 1 AS n, coalesce(bytes, 0) AS b FROM (%3$s) now_
                        UNION ALL
                        SELECT subject, state, data_location_id, kind, -1, -coalesce(bytes, 0) FROM (%4$s) was
                    ) d GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(b) <> 0;
                END IF;
                RETURN NULL;
            END
            $body$$f$,
            'ccat_tally_' || source.source_table, insert_into,
            replace(source.shape, '{rows}', 'new_rows'), replace(source.shape, '{rows}', 'old_rows'));
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %I() FROM PUBLIC, ccat_daemon, ccat_admin', 'ccat_tally_' || source.source_table);
        EXECUTE format('CREATE TRIGGER catalogue_tally_insert AFTER INSERT ON %1$I REFERENCING NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION %2$I()', source.source_table, 'ccat_tally_' || source.source_table);
        EXECUTE format('CREATE TRIGGER catalogue_tally_update AFTER UPDATE ON %1$I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION %2$I()', source.source_table, 'ccat_tally_' || source.source_table);
        EXECUTE format('CREATE TRIGGER catalogue_tally_delete AFTER DELETE ON %1$I REFERENCING OLD TABLE AS old_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION %2$I()', source.source_table, 'ccat_tally_' || source.source_table);
    END LOOP;
END
$do$;

-- Archive sites are counted before the tally reads them: PostgreSQL fires a table's triggers of
-- one event in the order of their names.
CREATE TRIGGER archive_sites_insert AFTER INSERT ON physical_copy REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ccat_archive_sites_changed();
CREATE TRIGGER archive_sites_update AFTER UPDATE ON physical_copy REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ccat_archive_sites_changed();
CREATE TRIGGER archive_sites_delete AFTER DELETE ON physical_copy REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ccat_archive_sites_changed();

-- The rows of each figure summed into one (figures that came to nothing dropped). Rows written
-- while it runs are not in its snapshot and stay as they are.
CREATE FUNCTION ccat_fold_catalogue_tally() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    folded bigint;
BEGIN
    WITH gone AS (DELETE FROM catalogue_tally RETURNING *),
    kept AS (
        INSERT INTO catalogue_tally (subject, state, data_location_id, kind, row_count, byte_count)
        SELECT subject, state, data_location_id, kind, sum(row_count), sum(byte_count) FROM gone GROUP BY 1, 2, 3, 4
        HAVING sum(row_count) <> 0 OR sum(byte_count) <> 0
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept) INTO folded;
    RETURN folded;
END
$$;

-- Every figure counted from the tables themselves (what the tally should say).
CREATE FUNCTION ccat_catalogue_counts()
RETURNS TABLE (subject text, state text, data_location_id bigint, kind text, row_count bigint, byte_count bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    source record;
BEGIN
    FOR source IN SELECT * FROM catalogue_tally_source ORDER BY source_table LOOP
        RETURN QUERY EXECUTE 'SELECT subject, state, data_location_id, kind, count(*), coalesce(sum(bytes), 0)::bigint FROM ('
            || replace(source.shape, '{rows}', quote_ident(source.source_table)) || ') d GROUP BY 1, 2, 3, 4';
    END LOOP;
END
$$;

-- Everything counted afresh from the tables: meant for a quiet catalogue (after a restore or a bulk
-- load), though writers may go on. Packages' archive sites first, each row locked as it is
-- updated; then the tally, while writers wait to add theirs, which land after it.
CREATE FUNCTION ccat_recount_catalogue_tally() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE raw_data_package p SET archive_sites = coalesce(held.sites, 0)
    FROM raw_data_package q LEFT JOIN package_archive_sites_held held ON held.raw_data_package_id = q.id
    WHERE p.id = q.id AND p.archive_sites <> coalesce(held.sites, 0);
    LOCK TABLE catalogue_tally IN EXCLUSIVE MODE;
    DELETE FROM catalogue_tally;
    INSERT INTO catalogue_tally (subject, state, data_location_id, kind, row_count, byte_count)
    SELECT * FROM ccat_catalogue_counts() c WHERE c.row_count <> 0 OR c.byte_count <> 0;
END
$$;

-- Only the triggers run the functions that write the tally and the archive sites as rows change.
REVOKE EXECUTE ON FUNCTION ccat_count_archive_sites(bigint[]), ccat_archive_sites_changed() FROM PUBLIC, ccat_daemon, ccat_admin;
REVOKE EXECUTE ON FUNCTION ccat_fold_catalogue_tally(), ccat_recount_catalogue_tally(), ccat_catalogue_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_fold_catalogue_tally(), ccat_recount_catalogue_tally(), ccat_catalogue_counts() TO ccat_daemon, ccat_admin;

SELECT ccat_recount_catalogue_tally();

-- `ccat status` and the page count the operations not yet finished per queue and state: few, among
-- every operation ever run.
CREATE INDEX operation_unfinished ON operation (queue, state) WHERE state NOT IN ('succeeded', 'cancelled');
