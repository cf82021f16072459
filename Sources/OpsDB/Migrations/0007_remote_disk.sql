-- A disk location that transfer nodes elsewhere reach over ssh: the ssh destination (a host, a
-- user@host, or an alias of the runner's ssh configuration). rsync routes into such a location
-- run rsync over ssh and verify the copy there with sha256sum over ssh. NULL: the path is mounted
-- wherever its operations run.
ALTER TABLE disk_data_location ADD COLUMN ssh_host text
    CHECK (ssh_host IS NULL OR (ssh_host ~ '^[A-Za-z0-9_][A-Za-z0-9_.@-]*$' AND length(ssh_host) <= 255));
