-- A package's archive sites count its verified copies in *active* long-term archives only, as
-- staging and `ccat find` count them. A site taken out of the topology keeps its
-- locations (deactivated) and their copies; until now those copies still counted towards "archived
-- at every site", while `ccat status` asked for as many sites as are active, so a package held at
-- one active site and one retired site passed for archived everywhere.
CREATE OR REPLACE VIEW package_archive_sites_held AS
SELECT c.raw_data_package_id, count(DISTINCT l.site_id)::smallint AS sites
FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
WHERE c.raw_data_package_id IS NOT NULL AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
  AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active
GROUP BY c.raw_data_package_id;
-- The deletion check (run by runners before they delete a temporary copy) reads the same rule here,
-- so that what may be deleted and what the status calls archived everywhere cannot drift apart.
GRANT SELECT ON package_archive_sites_held TO ccat_runner;

-- A long-term archive deactivated or brought back (or moved to another site, or made another kind
-- of location): the packages with copies there are counted again. Rare, and as costly as the
-- location is large.
CREATE FUNCTION ccat_archive_location_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    PERFORM ccat_count_archive_sites(ARRAY(
        SELECT DISTINCT c.raw_data_package_id FROM physical_copy c
        WHERE c.data_location_id = NEW.id AND c.raw_data_package_id IS NOT NULL));
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION ccat_archive_location_changed() FROM PUBLIC, ccat_daemon, ccat_admin;

CREATE TRIGGER archive_sites_location AFTER UPDATE OF active, site_id, location_type ON data_location
    FOR EACH ROW
    WHEN ((OLD.active, OLD.site_id, OLD.location_type) IS DISTINCT FROM (NEW.active, NEW.site_id, NEW.location_type)
          AND (OLD.location_type = 'LONG_TERM_ARCHIVE' OR NEW.location_type = 'LONG_TERM_ARCHIVE'))
    EXECUTE FUNCTION ccat_archive_location_changed();

-- Packages with copies in archives already inactive are counted again; the tally follows through
-- raw_data_package's triggers.
SELECT ccat_count_archive_sites(ARRAY(
    SELECT DISTINCT c.raw_data_package_id FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
    WHERE c.raw_data_package_id IS NOT NULL AND l.location_type = 'LONG_TERM_ARCHIVE' AND NOT l.active));
