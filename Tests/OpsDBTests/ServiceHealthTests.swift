import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("ccat status: service health", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct ServiceHealthTests {
    /// A daemon killed without a stop leaves RUNNING rows; once silent for several intervals they
    /// are shown as stale, not as live leaders. A slow interval is given its own room.
    @Test func aSilentServiceIsStaleAndAStoppedOneIsNot() async throws {
        try await withOpsDB { db, _ in
            let rows: [(service: String, status: String, interval: Int, ageSeconds: Int)] = [
                ("killed", "RUNNING", 30, 600),
                ("fresh", "RUNNING", 30, 5),
                ("slow", "RUNNING", 600, 900),
                ("stopped", "STOPPED", 30, 600),
            ]
            for row in rows {
                try await db.recordHeartbeat(service: row.service, instance: "daemon-a", status: row.status, leader: row.status != "STOPPED",
                                             details: ["interval_s": String(row.interval)])
                try await db.connection.execute("""
                    UPDATE service_heartbeat SET last_heartbeat_at = now() - make_interval(secs => \(row.ageSeconds)),
                        stopped_at = CASE WHEN status = 'STOPPED' THEN now() - make_interval(secs => \(row.ageSeconds)) END
                    WHERE service_name = \(row.service)
                    """)
            }
            let services = try await db.pipelineStatus().services
            let stale = Dictionary(uniqueKeysWithValues: services.map { ($0.service, $0.stale) })
            #expect(stale == ["killed": true, "fresh": false, "slow": false, "stopped": false])
        }
    }
}
