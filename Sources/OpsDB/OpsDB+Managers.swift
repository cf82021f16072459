import Foundation
import Postgres

/// Files of one observation at one SOURCE location, waiting to be packaged.
public struct UnpackagedGroup: Sendable {
    public var sourceLocationID: Int64
    public var observationID: Int64
    public var obsID: String
    public var fileIDs: [Int64]
    public var bytes: Int64
}

/// A completed raw data package sitting in a buffer, not yet in a bundle.
public struct UnbundledPackage: Sendable {
    public var packageID: Int64
    public var bufferID: Int64
    public var bytes: Int64
    public var ageSeconds: Double
}

/// A verified copy of a raw data package in a buffer whose site has an archive without it.
public struct ArchiveCandidate: Sendable {
    public var packageID: Int64
    public var bufferID: Int64
    public var archiveID: Int64
}

/// The queries the managers run in their loops. Every one is bounded by a limit and served by an
/// index of the schema (see `bench/managers` for the plans).
extension OpsDB {
    /// The channel that wakes the daemon's managers when work may have appeared.
    public static let workChannel = "ccat_work"

    public func notifyWork(_ payload: String) async throws {
        try await connection.notify(Self.workChannel, payload: payload)
    }

    /// Observations with unpackaged files whose newest file is at least `settleSeconds` old.
    public func unpackagedGroups(settleSeconds: Double, limit: Int, excluding: [(observationID: Int64, sourceLocationID: Int64)] = []) async throws -> [UnpackagedGroup] {
        // Grouped and limited over the partial index of unpackaged files first; the observation's
        // name is then looked up by primary key for the few groups returned.
        try await connection.query("""
            SELECT g.source_location_id, g.executed_obs_unit_id, g.files, g.bytes,
                   (SELECT o.obs_id FROM executed_obs_unit o WHERE o.id = g.executed_obs_unit_id) AS obs_id
            FROM (SELECT f.source_location_id, f.executed_obs_unit_id, array_agg(f.id ORDER BY f.id) AS files,
                         sum(f.size_bytes)::bigint AS bytes, min(f.id) AS first
                  FROM raw_data_file f
                  WHERE f.raw_data_package_id IS NULL
                    AND (f.executed_obs_unit_id, f.source_location_id) NOT IN
                        (SELECT unnest(\(excluding.map(\.observationID))::bigint[]), unnest(\(excluding.map(\.sourceLocationID))::bigint[]))
                  GROUP BY f.source_location_id, f.executed_obs_unit_id
                  HAVING max(f.registered_at) <= now() - make_interval(secs => \(settleSeconds))
                  ORDER BY min(f.id)
                  LIMIT \(limit)) g
            ORDER BY g.first
            """).map {
            UnpackagedGroup(sourceLocationID: try $0["source_location_id"], observationID: try $0["executed_obs_unit_id"],
                            obsID: try $0["obs_id"], fileIDs: try $0["files"], bytes: try $0["bytes"])
        }
    }

    /// Records of `table` in `statuses` that no live operation of `type` holds: work whose
    /// operation was never created (a crash between the two), was cancelled, or that was sent
    /// back (a bundle that arrived damaged goes back to PENDING after its transfer succeeded).
    func orphans(_ table: String, column: String, type: OperationType, statuses: [String], unpackPending: Bool = false,
                 limit: Int) async throws -> [Int64] {
        let extra: PostgresQuery = unpackPending ? "AND r.unpack_status = 'PENDING'" : ""
        return try await connection.query("""
            SELECT r.id FROM \(identifier: table) r
            WHERE r.status::text = ANY(\(statuses)) \(extra)
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.\(identifier: column) = r.id AND o.operation_type = \(type)
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY r.id LIMIT \(limit)
            """).map { try $0["id"] }
    }

    /// Pending packages without a live packaging operation, with where they are and their size.
    public func packagesWithoutOperation(limit: Int) async throws -> [(id: Int64, sourceLocationID: Int64, bytes: Int64)] {
        try await connection.query("""
            SELECT r.id, r.source_location_id,
                   (SELECT coalesce(sum(f.size_bytes), 0) FROM raw_data_file f WHERE f.raw_data_package_id = r.id)::bigint AS bytes
            FROM raw_data_package r
            WHERE r.status = 'PENDING'
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.raw_data_package_id = r.id AND o.operation_type = 'RAW_DATA_PACKAGE_CREATION'
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY r.id LIMIT \(limit)
            """).map { (try $0["id"], try $0["source_location_id"], try $0["bytes"]) }
    }

    public func bundlesWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer_package", column: "data_transfer_package_id", type: .dataTransferPackageCreation, statuses: ["PENDING"], limit: limit)
    }

    public func transfersWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer", column: "data_transfer_id", type: .dataTransfer, statuses: ["PENDING"], limit: limit)
    }

    public func archiveTransfersWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("long_term_archive_transfer", column: "long_term_archive_transfer_id", type: .longTermArchiveTransfer,
                          statuses: ["PENDING"], limit: limit)
    }

    /// Staging jobs (created from scientists' requests) without a live STAGING operation.
    /// Jobs of requests that ended (cancelled, released, expired) are left alone.
    public func stagingJobsWithoutOperation(limit: Int) async throws -> [Int64] {
        try await connection.query("""
            SELECT j.id FROM staging_job j LEFT JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.status = 'PENDING' AND (r.id IS NULL OR r.status IN ('STAGING', 'FAILED'))
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.staging_job_id = j.id AND o.operation_type = 'STAGING'
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY j.id LIMIT \(limit)
            """).map { try $0["id"] }
    }

    /// Transfers that arrived and wait for unpacking, with no unpack operation yet.
    public func transfersToUnpack(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer", column: "data_transfer_id", type: .dataTransferUnpacking, statuses: ["COMPLETED"],
                          unpackPending: true, limit: limit)
    }

    /// Completed packages with a verified copy in a buffer, not yet bundled, oldest first.
    public func unbundledPackages(limit: Int) async throws -> [UnbundledPackage] {
        try await connection.query("""
            SELECT p.id, c.data_location_id, p.size_bytes, extract(epoch FROM now() - p.updated_at)::float8 AS age
            FROM raw_data_package p
            JOIN physical_copy c ON c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
            JOIN data_location l ON l.id = c.data_location_id AND l.location_type = 'BUFFER'
            WHERE p.status = 'COMPLETED' AND p.data_transfer_package_id IS NULL
            ORDER BY p.id LIMIT \(limit)
            """).map {
            UnbundledPackage(packageID: try $0["id"], bufferID: try $0["data_location_id"], bytes: try $0["size_bytes"], ageSeconds: try $0["age"])
        }
    }

    /// Completed bundles in a buffer of `siteIDs` (the SOURCE sites) that no transfer has taken yet.
    public func bundlesToSend(originSiteIDs: [Int64], limit: Int) async throws -> [DataTransferPackage] {
        try await all(DataTransferPackage.self, """
            SELECT \(Self.bundleColumns) FROM data_transfer_package b
            WHERE b.status = 'COMPLETED'
              AND b.origin_location_id IN (SELECT id FROM data_location WHERE site_id = ANY(\(originSiteIDs)))
              AND NOT EXISTS (SELECT 1 FROM data_transfer t WHERE t.data_transfer_package_id = b.id)
            ORDER BY b.id LIMIT \(limit)
            """)
    }

    /// Bundles that arrived verified at a buffer of an archive site and have not reached every
    /// archive site yet: (bundle, the buffer holding it, sites it was or is being sent to).
    public func bundlesToReplicate(archiveSiteIDs: [Int64], limit: Int) async throws -> [(bundleID: Int64, bufferID: Int64, siteIDs: [Int64])] {
        try await connection.query("""
            SELECT t.data_transfer_package_id AS bundle, t.destination_location_id AS buffer,
                   (SELECT array_agg(DISTINCT l2.site_id) FROM data_transfer t2 JOIN data_location l2 ON l2.id = t2.destination_location_id
                    WHERE t2.data_transfer_package_id = t.data_transfer_package_id) AS sites
            FROM data_transfer t
            JOIN data_location l ON l.id = t.destination_location_id AND l.site_id = ANY(\(archiveSiteIDs))
            JOIN physical_copy c ON c.data_transfer_package_id = t.data_transfer_package_id AND c.data_location_id = t.destination_location_id
                                AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
            WHERE t.status = 'COMPLETED'
              AND (SELECT count(DISTINCT l2.site_id) FROM data_transfer t2 JOIN data_location l2 ON l2.id = t2.destination_location_id
                   WHERE t2.data_transfer_package_id = t.data_transfer_package_id
                     AND l2.site_id = ANY(\(archiveSiteIDs))) < cardinality(\(archiveSiteIDs))
            ORDER BY t.id LIMIT \(limit)
            """).map { (try $0["bundle"], try $0["buffer"], try $0["sites"]) }
    }

    /// Bundles that reached the relay site of their RELAY route, verified there, and were not sent
    /// on to the route's destination yet: (bundle, the relay buffer holding it, the route).
    public func relayedBundlesToForward(limit: Int) async throws -> [(bundleID: Int64, bufferID: Int64, routeID: Int64)] {
        try await connection.query("""
            SELECT t.data_transfer_package_id AS bundle, t.destination_location_id AS buffer, r.id AS route
            FROM data_transfer t
            JOIN data_transfer_route r ON r.id = t.route_id AND r.route_type = 'RELAY' AND r.active
            JOIN data_location l ON l.id = t.destination_location_id AND l.site_id = r.relay_site_id
            JOIN physical_copy c ON c.data_transfer_package_id = t.data_transfer_package_id AND c.data_location_id = t.destination_location_id
                                AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
            WHERE t.status = 'COMPLETED'
              AND NOT EXISTS (SELECT 1 FROM data_transfer n JOIN data_location nl ON nl.id = n.destination_location_id
                              WHERE n.data_transfer_package_id = t.data_transfer_package_id AND nl.site_id = r.destination_site_id)
            ORDER BY t.id LIMIT \(limit)
            """).map { (try $0["bundle"], try $0["buffer"], try $0["route"]) }
    }

    /// Verified package copies in buffers at sites whose active archives lack a transfer for them.
    public func packagesToArchive(limit: Int) async throws -> [ArchiveCandidate] {
        try await connection.query("""
            SELECT c.raw_data_package_id AS package, c.data_location_id AS buffer, a.id AS archive
            FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id AND l.location_type = 'BUFFER'
            JOIN data_location a ON a.site_id = l.site_id AND a.location_type = 'LONG_TERM_ARCHIVE' AND a.active
            WHERE c.kind = 'RAW_DATA_PACKAGE' AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM long_term_archive_transfer x
                              WHERE x.raw_data_package_id = c.raw_data_package_id AND x.destination_location_id = a.id)
            ORDER BY c.id LIMIT \(limit)
            """).map { ArchiveCandidate(packageID: try $0["package"], bufferID: try $0["buffer"], archiveID: try $0["archive"]) }
    }

    /// Present copies at SOURCE and BUFFER locations after `afterID` (a cursor, so every cycle
    /// moves on through the table), older than their location's retention, with no deletion
    /// operation. The caller checks each with `deletionBlocker` before scheduling it.
    public func deletionCandidates(afterID: Int64, defaultRetentionSeconds: Double, limit: Int) async throws -> [(copyID: Int64, locationID: Int64)] {
        try await connection.query("""
            SELECT c.id, c.data_location_id FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id AND l.location_type IN ('SOURCE', 'BUFFER')
            WHERE c.id > \(afterID) AND c.status = 'PRESENT'
              -- A file not yet packaged can never be deleted: no need to ask deletionBlocker.
              AND (c.kind <> 'RAW_DATA_FILE'
                   OR EXISTS (SELECT 1 FROM raw_data_file f WHERE f.id = c.raw_data_file_id AND f.raw_data_package_id IS NOT NULL))
              AND c.created_at <= now() - coalesce(l.retention, make_interval(secs => \(defaultRetentionSeconds)))
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.physical_copy_id = c.id AND o.operation_type = 'DELETION'
                              AND o.state NOT IN ('cancelled'))
            ORDER BY c.id LIMIT \(limit)
            """).map { (try $0["id"], try $0["data_location_id"]) }
    }
}

// MARK: Services

extension OpsDB {
    /// Takes the leader lock of a service for this session; false while another session holds it.
    public func tryLeadership(lockClass: Int32, name: String) async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock(\(lockClass), hashtext(\(name))) AS taken").first?["taken"] ?? false
    }

    /// The spec's HealthCheck: one row per service and instance, refreshed every cycle.
    public func recordHeartbeat(service: String, instance: String, status: String, leader: Bool, details: [String: String]?) async throws {
        let json = try details.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let host = ProcessInfo.processInfo.hostName
        let pid = Int(getpid())
        try await connection.execute("""
            INSERT INTO service_heartbeat AS h (service_name, instance, host, pid, status, is_leader, details, last_heartbeat_at,
                                                stopped_at)
            VALUES (\(service), \(instance), \(host), \(pid), \(status)::service_status, \(leader), \(json)::jsonb, now(),
                    CASE WHEN \(status) = 'STOPPED' THEN now() END)
            ON CONFLICT (service_name, instance) DO UPDATE SET
                host = excluded.host, pid = excluded.pid, status = excluded.status, is_leader = excluded.is_leader,
                details = coalesce(excluded.details, h.details), last_heartbeat_at = now(), stopped_at = excluded.stopped_at,
                started_at = CASE WHEN h.pid <> excluded.pid THEN now() ELSE h.started_at END
            """)
    }
}

// MARK: Status

/// What `ccat status` shows: the pipeline at a glance.
public struct PipelineStatus: Codable, Sendable {
    public struct Stage: Codable, Sendable {
        public var stage: String
        public var status: String
        public var count: Int
        public var bytes: Int64
    }
    public struct Copies: Codable, Sendable {
        public var location: String
        public var locationType: String
        public var kind: String
        public var present: Int
        public var deleted: Int
        public var bytesPresent: Int64
        public var usedPercent: Double?
        public var reachable: Bool?
    }
    public struct Operations: Codable, Sendable {
        public var queue: String
        public var state: String
        public var count: Int
    }
    public struct ServiceHealth: Codable, Sendable {
        public var service: String
        public var instance: String
        public var status: String
        public var leader: Bool
        public var secondsSinceHeartbeat: Double
        /// Not stopped, yet silent for much longer than its interval (`staleAfterSeconds`): a
        /// daemon that was killed, or hangs. Its leader lock went with its session.
        public var stale: Bool
    }
    public struct Attention: Codable, Sendable {
        public var operationID: Int64
        public var type: String
        public var state: String
        public var attempts: Int
        public var errorClass: String?
        public var lastError: String?
    }
    public var files: Int
    public var fileBytes: Int64
    public var stages: [Stage]
    public var copies: [Copies]
    public var operations: [Operations]
    public var services: [ServiceHealth]
    public var attention: [Attention]
    /// Items managers could not handle and skip for now (`manager_issue`).
    public var setAside: [ManagerIssue]
    /// Raw data packages with a verified copy in every active archive site.
    public var packagesArchivedEverywhere: Int
    public var packages: Int
}

extension OpsDB {
    /// A heartbeat older than this (or three of the service's intervals, if longer) is stale.
    public static let staleAfterMinimumSeconds = 300

    public func pipelineStatus() async throws -> PipelineStatus {
        let files = try await connection.query("SELECT count(*)::int AS n, coalesce(sum(size_bytes), 0)::bigint AS bytes FROM raw_data_file").first
        let stages = try await connection.query("""
            SELECT 'raw_data_package' AS stage, status::text, count(*)::int AS n, coalesce(sum(size_bytes), 0)::bigint AS bytes FROM raw_data_package GROUP BY status
            UNION ALL SELECT 'data_transfer_package', status::text, count(*)::int, coalesce(sum(size_bytes), 0)::bigint FROM data_transfer_package GROUP BY status
            UNION ALL SELECT 'data_transfer', status::text, count(*)::int, coalesce(sum(bytes_transferred), 0)::bigint FROM data_transfer GROUP BY status
            UNION ALL SELECT 'unpacking', t.unpack_status::text, count(*)::int, coalesce(sum(b.size_bytes), 0)::bigint
                FROM data_transfer t JOIN data_transfer_package b ON b.id = t.data_transfer_package_id WHERE t.status = 'COMPLETED' GROUP BY t.unpack_status
            UNION ALL SELECT 'long_term_archive_transfer', t.status::text, count(*)::int, coalesce(sum(p.size_bytes), 0)::bigint
                FROM long_term_archive_transfer t JOIN raw_data_package p ON p.id = t.raw_data_package_id GROUP BY t.status
            UNION ALL SELECT 'staging_job', j.status::text, count(DISTINCT j.id)::int, coalesce(sum(p.size_bytes), 0)::bigint
                FROM staging_job j LEFT JOIN staging_job_package jp ON jp.staging_job_id = j.id
                LEFT JOIN raw_data_package p ON p.id = jp.raw_data_package_id GROUP BY j.status
            ORDER BY 1, 2
            """).map {
            PipelineStatus.Stage(stage: try $0["stage"], status: try $0["status"], count: try $0["n"], bytes: try $0["bytes"])
        }
        let copies = try await connection.query("""
            SELECT s.short_name || ':' || l.name AS location, l.location_type::text AS type, c.kind::text AS kind,
                   count(*) FILTER (WHERE c.status = 'PRESENT')::int AS present,
                   count(*) FILTER (WHERE c.status = 'DELETED')::int AS deleted,
                   coalesce(sum(c.size_bytes) FILTER (WHERE c.status = 'PRESENT'), 0)::bigint AS bytes,
                   (CASE WHEN st.total_bytes > 0 THEN 100.0 * st.used_bytes / st.total_bytes END)::float8 AS used,
                   st.reachable
            FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id JOIN site s ON s.id = l.site_id
            LEFT JOIN data_location_status st ON st.data_location_id = l.id
            GROUP BY s.short_name, l.name, l.location_type, c.kind, st.total_bytes, st.used_bytes, st.reachable ORDER BY 1, 3
            """).map {
            PipelineStatus.Copies(location: try $0["location"], locationType: try $0["type"], kind: try $0["kind"], present: try $0["present"],
                                  deleted: try $0["deleted"], bytesPresent: try $0["bytes"], usedPercent: try $0["used"], reachable: try $0["reachable"])
        }
        let operations = try await connection.query("""
            SELECT queue, state::text AS state, count(*)::int AS n FROM operation
            WHERE state NOT IN ('succeeded', 'cancelled') GROUP BY queue, state ORDER BY queue, state
            """).map { PipelineStatus.Operations(queue: try $0["queue"], state: try $0["state"], count: try $0["n"]) }
        // A service writes its heartbeat every cycle, at least every interval (kept in details);
        // a cycle may run long, hence the generous bound.
        let services = try await connection.query("""
            SELECT service_name, instance, status::text AS status, is_leader,
                   extract(epoch FROM now() - last_heartbeat_at)::float8 AS age,
                   status <> 'STOPPED' AND extract(epoch FROM now() - last_heartbeat_at)
                       > greatest(\(Self.staleAfterMinimumSeconds)::float8, 3 * coalesce((details->>'interval_s')::float8, 30)) AS stale
            FROM service_heartbeat WHERE status <> 'STOPPED' OR stopped_at > now() - interval '1 hour'
            ORDER BY service_name, instance
            """).map {
            PipelineStatus.ServiceHealth(service: try $0["service_name"], instance: try $0["instance"], status: try $0["status"],
                                         leader: try $0["is_leader"], secondsSinceHeartbeat: try $0["age"], stale: try $0["stale"])
        }
        let attention = try await connection.query("""
            SELECT id, operation_type::text AS type, state::text AS state, attempts, error_class, last_error FROM operation
            WHERE state IN ('failed', 'intervention') ORDER BY updated_at DESC LIMIT 20
            """).map {
            PipelineStatus.Attention(operationID: try $0["id"], type: try $0["type"], state: try $0["state"], attempts: try $0["attempts"],
                                     errorClass: try $0["error_class"], lastError: try $0["last_error"])
        }
        let archived = try await connection.query("""
            WITH required AS (SELECT DISTINCT site_id FROM data_location WHERE location_type = 'LONG_TERM_ARCHIVE' AND active)
            SELECT count(*)::int AS total,
                   count(*) FILTER (WHERE (SELECT count(*) FROM required) > 0 AND (
                       SELECT count(DISTINCT l.site_id) FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                       WHERE c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                         AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.site_id IN (SELECT site_id FROM required)
                   ) >= (SELECT count(*) FROM required))::int AS everywhere
            FROM raw_data_package p
            """).first
        return PipelineStatus(files: try files?["n"] ?? 0, fileBytes: try files?["bytes"] ?? 0, stages: stages, copies: copies,
                              operations: operations, services: services, attention: attention, setAside: try await managerIssues(limit: 50),
                              packagesArchivedEverywhere: try archived?["everywhere"] ?? 0, packages: try archived?["total"] ?? 0)
    }
}

// MARK: Items a manager set aside

/// An item a manager could not handle, and why (`manager_issue`).
public struct ManagerIssue: Codable, Sendable, Equatable {
    public var manager: String
    public var item: String
    public var error: String
    public var failures: Int
    public var firstSeenAt: Date
    public var lastSeenAt: Date
}

extension OpsDB {
    /// How long an item that failed is left alone before the manager tries it again.
    public static let setAsideSeconds = 600

    /// Records that `item` failed; its failures are counted.
    public func recordManagerIssue(manager: String, item: String, error: String) async throws {
        try await connection.execute("""
            INSERT INTO manager_issue (manager, item, error) VALUES (\(manager), \(item), \(String(error.prefix(2000))))
            ON CONFLICT (manager, item) DO UPDATE SET error = excluded.error, failures = manager_issue.failures + 1, last_seen_at = now()
            """)
    }

    /// `item` worked: it is no longer an issue.
    public func clearManagerIssue(manager: String, item: String) async throws {
        try await connection.execute("DELETE FROM manager_issue WHERE manager = \(manager) AND item = \(item)")
    }

    /// The items `manager` has issues with, each with whether it failed within `setAsideSeconds`
    /// (the manager skips those; the others it tries again, and clears when they work).
    public func managerIssueItems(manager: String) async throws -> [String: Bool] {
        Dictionary(uniqueKeysWithValues: try await connection.query("""
            SELECT item, last_seen_at > now() - make_interval(secs => \(Self.setAsideSeconds)) AS recent
            FROM manager_issue WHERE manager = \(manager)
            """).map { (try $0["item"] as String, try $0["recent"] as Bool) })
    }

    public func managerIssues(limit: Int = 100) async throws -> [ManagerIssue] {
        try await connection.query("""
            SELECT manager, item, error, failures, first_seen_at, last_seen_at FROM manager_issue
            ORDER BY last_seen_at DESC LIMIT \(limit)
            """).map {
            ManagerIssue(manager: try $0["manager"], item: try $0["item"], error: try $0["error"], failures: try $0["failures"],
                         firstSeenAt: try $0["first_seen_at"], lastSeenAt: try $0["last_seen_at"])
        }
    }
}
