-- Adaptive concurrency per link (origin site -> destination site): how many batch jobs may carry
-- the link's DATA_TRANSFER operations at once. The link optimizer (in the transfer manager) moves
-- active_limit between min_active and max_active from measured throughput and success, and
-- records every decision; the dispatcher keeps at most active_limit jobs on the link.
CREATE TABLE link_concurrency (
    origin_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    destination_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    active_limit integer NOT NULL,
    min_active integer NOT NULL,
    max_active integer NOT NULL,
    -- From the topology's links: (true), or the defaults (false).
    configured boolean NOT NULL DEFAULT false,
    ema_bytes_per_second double precision,
    success_rate double precision,
    decided_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL DEFAULT 'first transfer on the link',
    PRIMARY KEY (origin_site_id, destination_site_id),
    CHECK (origin_site_id <> destination_site_id),
    CHECK (min_active >= 1 AND max_active >= min_active AND active_limit BETWEEN min_active AND max_active)
);

CREATE TABLE link_concurrency_decision (
    id bigserial PRIMARY KEY,
    origin_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    destination_site_id bigint NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    decided_at timestamptz NOT NULL DEFAULT now(),
    previous_limit integer NOT NULL,
    new_limit integer NOT NULL,
    -- What the decision saw since the one before: finished attempts, their success, the link's
    -- bytes per second over the interval, and its moving average after this one.
    attempts integer NOT NULL,
    success_rate double precision,
    bytes_per_second double precision,
    ema_bytes_per_second double precision,
    active_jobs integer NOT NULL,
    waiting_operations integer NOT NULL,
    reason text NOT NULL
);
CREATE INDEX link_concurrency_decision_link ON link_concurrency_decision (origin_site_id, destination_site_id, decided_at DESC);
