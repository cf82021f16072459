import Foundation
import Postgres

// What the daemon's /metrics and status page show beyond `ccat status`: every figure is a count
// or an age over a bounded set of labels (queues, locations, states), never one per package.

/// Counts and ages for monitoring, read in one go.
public struct MonitoringFigures: Codable, Sendable {
    public struct BatchJobs: Codable, Sendable, Equatable {
        public var scheduler: String
        public var state: String
        public var count: Int
    }
    public struct StagingRequests: Codable, Sendable, Equatable {
        public var status: String
        public var count: Int
    }
    /// How long the oldest unfinished item of a stage has waited (stages as in `ccat status`;
    /// `raw_data_file` is files not yet in a package).
    public struct OldestPending: Codable, Sendable, Equatable {
        public var stage: String
        public var count: Int
        public var oldestSeconds: Double
    }
    /// The oldest operation waiting to be submitted, per queue.
    public struct QueueWait: Codable, Sendable, Equatable {
        public var queue: String
        public var oldestPendingSeconds: Double
    }
    public var batchJobs: [BatchJobs]
    public var stagingRequests: [StagingRequests]
    public var oldestPending: [OldestPending]
    public var queueWaits: [QueueWait]
    /// What each link moved since the history began (kept attempts plus daily totals): counters.
    public var linkTotals: [LinkThroughput]
}

/// Bytes one link moved in one hour (UTC), for the status page's chart.
public struct LinkHour: Codable, Sendable, Equatable {
    public var origin: String?
    public var destination: String
    /// Hours before now: 0 is the current hour, 23 the oldest of the last 24.
    public var hoursAgo: Int
    public var bytes: Int64
}

/// A staging request as the status page lists it.
public struct StagingRequestSummary: Codable, Sendable, Equatable {
    public var publicId: String
    public var username: String?
    public var status: String
    public var destination: String?
    public var reason: String?
    public var submittedAt: Date
}

extension OpsDB {
    /// Batch jobs live now, and those that ended in the last 24 hours, by scheduler and state.
    public func monitoringFigures() async throws -> MonitoringFigures {
        let jobs = try await all(MonitoringFigures.BatchJobs.self, """
            SELECT scheduler::text AS scheduler, state::text AS state, count(*)::int AS count FROM batch_job
            WHERE ended_at IS NULL OR ended_at > now() - interval '24 hours'
            GROUP BY 1, 2 ORDER BY 1, 2
            """)
        let requests = try await all(MonitoringFigures.StagingRequests.self, """
            SELECT status::text AS status, count(*)::int AS count FROM staging_request GROUP BY 1 ORDER BY 1
            """)
        let oldest = try await all(MonitoringFigures.OldestPending.self, """
            SELECT 'raw_data_file' AS stage, count(*)::int AS count,
                   coalesce(extract(epoch FROM now() - min(registered_at)), 0)::float8 AS oldest_seconds
                FROM raw_data_file WHERE raw_data_package_id IS NULL
            UNION ALL SELECT 'raw_data_package', count(*)::int, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                FROM raw_data_package WHERE status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
            UNION ALL SELECT 'data_transfer_package', count(*)::int, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                FROM data_transfer_package WHERE status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
            UNION ALL SELECT 'data_transfer', count(*)::int, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                FROM data_transfer WHERE status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
            UNION ALL SELECT 'unpacking', count(*)::int, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                FROM data_transfer WHERE status = 'COMPLETED' AND unpack_status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
            UNION ALL SELECT 'long_term_archive_transfer', count(*)::int, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
                FROM long_term_archive_transfer WHERE status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
            UNION ALL SELECT 'staging_request', count(*)::int, coalesce(extract(epoch FROM now() - min(submitted_at)), 0)::float8
                FROM staging_request WHERE status IN ('SUBMITTED', 'ACCEPTED', 'STAGING')
            """)
        let waits = try await all(MonitoringFigures.QueueWait.self, """
            SELECT queue, extract(epoch FROM now() - min(created_at))::float8 AS oldest_pending_seconds
            FROM operation WHERE state = 'pending' GROUP BY queue ORDER BY queue
            """)
        let totals = try await linkThroughput(since: Date(timeIntervalSince1970: 0))
        return MonitoringFigures(batchJobs: jobs, stagingRequests: requests, oldestPending: oldest, queueWaits: waits, linkTotals: totals)
    }

    /// Bytes per link per hour over the last 24 hours (successful attempts, by when they ended).
    public func linkHours() async throws -> [LinkHour] {
        try await all(LinkHour.self, """
            SELECT os.short_name || ':' || ol.name AS origin, ds.short_name || ':' || dl.name AS destination,
                   floor(extract(epoch FROM date_trunc('hour', now()) - date_trunc('hour', a.finished_at)) / 3600)::int AS hours_ago,
                   sum(a.bytes)::bigint AS bytes
            FROM transfer_attempt a JOIN data_location dl ON dl.id = a.destination_location_id JOIN site ds ON ds.id = dl.site_id
            LEFT JOIN data_location ol ON ol.id = a.origin_location_id LEFT JOIN site os ON os.id = ol.site_id
            WHERE a.succeeded AND a.finished_at > date_trunc('hour', now()) - interval '23 hours'
            GROUP BY 1, 2, 3 ORDER BY 2, 1, 3
            """)
    }

    /// Staging requests still open, and those that ended in the last 7 days, newest first.
    public func recentStagingRequests(limit: Int) async throws -> [StagingRequestSummary] {
        try await all(StagingRequestSummary.self, """
            SELECT r.public_id::text AS public_id, r.username, r.status::text AS status, s.short_name || ':' || l.name AS destination,
                   r.reason, r.submitted_at
            FROM staging_request r LEFT JOIN data_location l ON l.id = r.destination_location_id LEFT JOIN site s ON s.id = l.site_id
            WHERE r.status IN ('SUBMITTED', 'ACCEPTED', 'STAGING', 'READY') OR r.updated_at > now() - interval '7 days'
            ORDER BY r.submitted_at DESC LIMIT \(limit)
            """)
    }

    /// Whether the database answers (for /healthz).
    public func ping() async throws {
        _ = try await connection.query("SELECT 1")
    }
}
