import Foundation
import Postgres

// What `ccat status` shows.

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
    /// Fixity and audit of every long-term archive.
    public var integrity: [ArchiveIntegrity]
    /// Bytes moved per link and kind of work in the last 24 hours.
    public var links: [LinkThroughput]
    /// Conditions the alert manager raised that still hold (newest first, at most 50).
    public var alerts: [Alert]
    /// Each link's concurrent transfer jobs: limit, bounds and the optimizer's last decision.
    public var linkConcurrency: [LinkConcurrency]
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
        // Counted per location and kind first, then named: one pass over physical_copy.
        let copies = try await connection.query("""
            WITH per AS (
                SELECT data_location_id, kind, count(*) FILTER (WHERE status = 'PRESENT')::int AS present,
                       count(*) FILTER (WHERE status = 'DELETED')::int AS deleted,
                       coalesce(sum(size_bytes) FILTER (WHERE status = 'PRESENT'), 0)::bigint AS bytes
                FROM physical_copy GROUP BY 1, 2
            )
            SELECT s.short_name || ':' || l.name AS location, l.location_type::text AS type, per.kind::text AS kind,
                   per.present, per.deleted, per.bytes,
                   (CASE WHEN st.total_bytes > 0 THEN 100.0 * st.used_bytes / st.total_bytes END)::float8 AS used, st.reachable
            FROM per JOIN data_location l ON l.id = per.data_location_id JOIN site s ON s.id = l.site_id
            LEFT JOIN data_location_status st ON st.data_location_id = l.id ORDER BY 1, 3
            """).map {
            PipelineStatus.Copies(location: try $0["location"], locationType: try $0["type"], kind: try $0["kind"], present: try $0["present"],
                                  deleted: try $0["deleted"], bytesPresent: try $0["bytes"], usedPercent: try $0["used"], reachable: try $0["reachable"])
        }
        let operations = try await connection.query("""
            SELECT queue, state::text AS state, count(*)::int AS n FROM operation
            WHERE state NOT IN ('succeeded', 'cancelled') GROUP BY queue, state ORDER BY queue, state
            """).map { PipelineStatus.Operations(queue: try $0["queue"], state: try $0["state"], count: try $0["n"]) }
        let services = try await serviceHealth()
        let attention = try await connection.query("""
            SELECT id, operation_type::text AS type, state::text AS state, attempts, error_class, last_error FROM operation
            WHERE state IN ('failed', 'intervention') ORDER BY updated_at DESC LIMIT 20
            """).map {
            PipelineStatus.Attention(operationID: try $0["id"], type: try $0["type"], state: try $0["state"], attempts: try $0["attempts"],
                                     errorClass: try $0["error_class"], lastError: try $0["last_error"])
        }
        // Packages with a verified copy at every active archive site: one grouped pass over the
        // archive copies (not a lookup per package).
        let archived = try await connection.query("""
            WITH required AS (SELECT DISTINCT site_id FROM data_location WHERE location_type = 'LONG_TERM_ARCHIVE' AND active),
            held AS (
                SELECT c.raw_data_package_id FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                WHERE c.raw_data_package_id IS NOT NULL AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                  AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.site_id IN (SELECT site_id FROM required)
                GROUP BY c.raw_data_package_id HAVING count(DISTINCT l.site_id) >= (SELECT count(*) FROM required)
            )
            SELECT (SELECT count(*) FROM raw_data_package)::int AS total,
                   (CASE WHEN (SELECT count(*) FROM required) > 0 THEN (SELECT count(*) FROM held) ELSE 0 END)::int AS everywhere
            """).first
        return PipelineStatus(files: try files?["n"] ?? 0, fileBytes: try files?["bytes"] ?? 0, stages: stages, copies: copies,
                              operations: operations, services: services, attention: attention, setAside: try await managerIssues(limit: 50),
                              packagesArchivedEverywhere: try archived?["everywhere"] ?? 0, packages: try archived?["total"] ?? 0,
                              integrity: try await archiveIntegrity(), links: try await linkThroughput(since: Date().addingTimeInterval(-86_400)),
                              alerts: try await openAlerts(limit: 50), linkConcurrency: try await linkConcurrency())
    }

    /// Every daemon service that runs, or stopped within the hour, with its heartbeat's age and
    /// whether it is stale: the one definition `ccat status`, the page and the alerts share.
    public func serviceHealth() async throws -> [PipelineStatus.ServiceHealth] {
        // A service writes its heartbeat every cycle, at least every interval (kept in details);
        // a cycle may run long, hence the generous bound.
        try await connection.query("""
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
    }
}

/// How every `--json` document and the daemon's /api/v1 answers are written: snake_case keys in
/// sorted order, ISO 8601 times.
public enum JSONDocument {
    public static func encoder(pretty: Bool = true) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}
