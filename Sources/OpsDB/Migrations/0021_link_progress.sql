-- What each link has carried, counted while transfers run: runners add what their copies have
-- sent every few seconds, so the link optimizer sees a link's throughput while transfers of hours
-- or days are on their way, not only as they finish. bytes_at_decision is the count at the link's
-- last decision; the difference over the time since is the link's throughput.
ALTER TABLE link_concurrency
    ADD COLUMN bytes_moved bigint NOT NULL DEFAULT 0 CHECK (bytes_moved >= 0),
    ADD COLUMN bytes_at_decision bigint NOT NULL DEFAULT 0 CHECK (bytes_at_decision >= 0);

-- Adds what a transfer has sent to its link's count. A runner counts only for transfers its job is
-- running; the daemon, administrators and superusers (members of every role) for any.
CREATE FUNCTION ccat_link_sent(transfer bigint, sent bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    UPDATE link_concurrency lc SET bytes_moved = lc.bytes_moved + sent
    FROM data_transfer t JOIN data_location a ON a.id = t.origin_location_id JOIN data_location b ON b.id = t.destination_location_id
    WHERE t.id = transfer AND sent > 0 AND lc.origin_site_id = a.site_id AND lc.destination_site_id = b.site_id
      AND (NOT ccat_is_runner() OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user)
           OR transfer IN (SELECT o.data_transfer_id FROM ccat_runner_operations() o))
$$;
REVOKE ALL ON FUNCTION ccat_link_sent(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_link_sent(bigint, bigint) TO ccat_runner, ccat_daemon, ccat_admin;
