import Foundation
import Postgres

// The daemon's services: waking them, leadership, heartbeats, and the last MONITORING result.

extension OpsDB {
    /// The channel that wakes the daemon's managers when work may have appeared.
    public static let workChannel = "ccat_work"

    public func notifyWork(_ payload: String) async throws {
        try await connection.notify(Self.workChannel, payload: payload)
    }

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

    public func locationStatus(_ locationID: Int64) async throws -> LocationStatus? {
        try await optional(LocationStatus.self, """
            SELECT data_location_id, measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message
            FROM data_location_status WHERE data_location_id = \(locationID)
            """)
    }
}
