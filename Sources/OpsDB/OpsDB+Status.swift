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
        // Files, stages and copies from the tally the triggers keep (migration 0023): a read of a
        // few hundred rows however large the catalogue. Staging jobs are few and counted here.
        let tally = try await catalogueTally()
        func figures(_ subject: String) -> [TallyFigure] { tally.filter { $0.subject == subject } }
        let fileFigures = figures("raw_data_file")
        var stages = ["raw_data_package", "data_transfer_package", "data_transfer", "unpacking", "long_term_archive_transfer"].flatMap { stage in
            figures(stage).filter { $0.rows != 0 }.map { PipelineStatus.Stage(stage: stage, status: $0.state, count: Int($0.rows), bytes: $0.bytes) }
        }
        stages += try await connection.query("""
            SELECT j.status::text AS status, count(DISTINCT j.id)::int AS n, coalesce(sum(p.size_bytes), 0)::bigint AS bytes
            FROM staging_job j LEFT JOIN staging_job_package jp ON jp.staging_job_id = j.id
            LEFT JOIN raw_data_package p ON p.id = jp.raw_data_package_id GROUP BY j.status
            """).map { PipelineStatus.Stage(stage: "staging_job", status: try $0["status"], count: try $0["n"], bytes: try $0["bytes"]) }
        stages.sort { ($0.stage, $0.status) < ($1.stage, $1.status) }
        let copies = try await copyFigures(figures("physical_copy"))
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
        // Packages with a verified copy at as many archive sites as are active (each package's
        // count is kept as its copies change).
        let required = try await connection.query("""
            SELECT count(DISTINCT site_id)::int AS n FROM data_location WHERE location_type = 'LONG_TERM_ARCHIVE' AND active
            """).first?["n"] as Int? ?? 0
        let everywhere = required == 0 ? 0 : figures("package_archive_sites").filter { (Int($0.state) ?? 0) >= required }.reduce(0) { $0 + $1.rows }
        let packages = figures("raw_data_package").reduce(0) { $0 + $1.rows }
        return PipelineStatus(files: Int(fileFigures.reduce(0) { $0 + $1.rows }), fileBytes: fileFigures.reduce(0) { $0 + $1.bytes },
                              stages: stages, copies: copies,
                              operations: operations, services: services, attention: attention, setAside: try await managerIssues(limit: 50),
                              packagesArchivedEverywhere: Int(everywhere), packages: Int(packages),
                              integrity: try await archiveIntegrity(), links: try await linkThroughput(since: Date().addingTimeInterval(-86_400)),
                              alerts: try await openAlerts(limit: 50), linkConcurrency: try await linkConcurrency())
    }

    /// Copies per location and kind from the tally's physical_copy figures, with the location's
    /// name, type and last-seen usage.
    func copyFigures(_ figures: [TallyFigure]) async throws -> [PipelineStatus.Copies] {
        let places = try await connection.query("""
            SELECT l.id, s.short_name || ':' || l.name AS location, l.location_type::text AS type,
                   (CASE WHEN st.total_bytes > 0 THEN 100.0 * st.used_bytes / st.total_bytes END)::float8 AS used, st.reachable
            FROM data_location l JOIN site s ON s.id = l.site_id LEFT JOIN data_location_status st ON st.data_location_id = l.id
            """)
        var named: [Int64: (location: String, type: String, used: Double?, reachable: Bool?)] = [:]
        for row in places {
            named[try row["id"]] = (try row["location"], try row["type"], try row["used"], try row["reachable"])
        }
        var copies: [String: PipelineStatus.Copies] = [:]
        for figure in figures where figure.rows != 0 {
            guard let place = named[figure.dataLocationId] else { continue }
            let key = "\(place.location)|\(figure.kind)"
            var entry = copies[key] ?? PipelineStatus.Copies(location: place.location, locationType: place.type, kind: figure.kind, present: 0, deleted: 0,
                                                             bytesPresent: 0, usedPercent: place.used, reachable: place.reachable)
            switch figure.state {
            case "PRESENT":
                entry.present += Int(figure.rows)
                entry.bytesPresent += figure.bytes
            case "DELETED":
                entry.deleted += Int(figure.rows)
            default:
                break
            }
            copies[key] = entry
        }
        return copies.values.sorted { ($0.location, $0.kind) < ($1.location, $1.kind) }
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
