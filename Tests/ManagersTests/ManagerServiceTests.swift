import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Synchronization
import Testing
import TestSupport

/// One manager run as a service, against a real PostgreSQL.
@Suite("manager service", .enabled(if: TestEnvironment.runPostgresTests))
struct ManagerServiceTests {
    /// A cycle that says when it has started and then blocks until it is cancelled: in a sleep,
    /// or in a statement that the server has to cancel.
    final class BlockingCycle: ManagerCycle {
        let name = "blocking-manager"
        let inQuery: Bool
        let started = Atomic<Int>(0)

        init(inQuery: Bool) { self.inQuery = inQuery }

        func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
            started.add(1, ordering: .sequentiallyConsistent)
            if inQuery {
                try await db.connection.execute("SELECT pg_sleep(600)")
            } else {
                try await Task.sleep(for: .seconds(600))
            }
            return 0
        }
    }

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
        func set() { value.store(true, ordering: .sequentiallyConsistent) }
    }

    static func heartbeat(_ db: PostgresConnection) async throws -> String? {
        try await db.query("SELECT status FROM service_heartbeat WHERE service_name = 'blocking-manager'").first?["status"]
    }

    /// Migrates the database, runs a service of a BlockingCycle and returns once its cycle started
    /// (or a minute passed).
    static func startBlocked(_ database: TestDatabase, _ db: PostgresConnection, inQuery: Bool) async throws -> (Task<Void, any Error>, BlockingCycle) {
        _ = try await Migrator.bundled().migrate(db)
        let cycle = BlockingCycle(inQuery: inQuery)
        let service = ManagerService(cycle, conninfo: database.conninfo, interval: .seconds(1), instance: "test", logger: Logger(label: "test"))
        let running = Task { try await service.run() }
        _ = try await eventually(within: .seconds(60), every: .milliseconds(20)) { cycle.started.load(ordering: .sequentiallyConsistent) > 0 }
        return (running, cycle)
    }

    /// A stop that runs out of time cancels the service in the middle of a cycle. The row in
    /// service_heartbeat must still say STOPPED: `ccat stage request` and `ccat status` read it to
    /// tell whether the daemon runs.
    @Test(arguments: [false, true])
    func aServiceCancelledMidCycleStillRecordsItsStop(inQuery: Bool) async throws {
        try await withTestDatabase { database, db in
            let (running, cycle) = try await Self.startBlocked(database, db, inQuery: inQuery)
            #expect(cycle.started.load(ordering: .sequentiallyConsistent) == 1)
            let before = try await Self.heartbeat(db)
            #expect(before != nil && before != "STOPPED", "\(before ?? "no row")")
            if inQuery {
                // Cancel only once the statement runs on the server.
                let active: PostgresQuery = """
                    SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(600)' AND state = 'active'
                    """
                _ = try await eventually(within: .seconds(60), every: .milliseconds(20)) { try await !db.query(active).isEmpty }
            }
            running.cancel()
            try await running.value
            // A cancelled service waits only briefly for its STOPPED row; the write itself goes on
            // in this process and lands even when the database is slow to take it.
            let stopped = try await eventually(within: .seconds(60)) { try await Self.heartbeat(db) == "STOPPED" }
            let after = try await Self.heartbeat(db)
            #expect(stopped, "service_heartbeat says \(after ?? "no row")")
        }
    }

    /// A database that does not take the STOPPED row must not hold the stop: the service group
    /// crashes the daemon once its cancellation bound has passed.
    @Test func aStopRecordTheDatabaseHoldsUpDoesNotHoldTheStop() async throws {
        try await withTestDatabase { database, db in
            let (running, _) = try await Self.startBlocked(database, db, inQuery: false)
            let ended = Flag()
            try await db.transaction { db in
                // The row cannot be written while this transaction holds the table.
                try await db.execute("LOCK TABLE service_heartbeat IN EXCLUSIVE MODE")
                running.cancel()
                Task {
                    _ = try? await running.value
                    ended.set()
                }
                _ = try await eventually(within: .seconds(60), every: .milliseconds(50)) { ended.isSet }
            }
            #expect(ended.isSet, "the service waited on the database after its stop")
        }
    }
}
