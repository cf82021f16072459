-- Outages: failures an outage causes (a job whose runner never reached its operations, a runner
-- that stopped renewing its lease, a peer host that does not answer) do not use up an operation's
-- attempts while the streak of such failures is younger than the retry policy's outage grace.
-- unreached_since is when the current streak began; a success or any other failure ends it.
ALTER TABLE operation ADD COLUMN unreached_since timestamptz;
COMMENT ON COLUMN operation.unreached_since IS
    'start of the current streak of outage-like failures (never reached, lease expired, peer unreachable); NULL when none';

-- The runner reports its own failures, so it sets and clears the streak of its job's operations.
GRANT UPDATE (unreached_since) ON operation TO ccat_runner;
