-- ccat_archive_latency() runs with its owner's rights (SECURITY DEFINER) over the archive tables;
-- like the other staging functions it is for the scientist role only, not for every role that can
-- connect (functions are executable by PUBLIC unless revoked).
REVOKE ALL ON FUNCTION ccat_archive_latency() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ccat_archive_latency() TO ccat_scientist;
