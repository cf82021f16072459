import Foundation
import Postgres
import Testing
import TestSupport

struct Boom: Error {}

@Suite("Transactions and LISTEN/NOTIFY against a real PostgreSQL", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct TransactionTests {
    @Test func throwingTransactionLeavesNoRows() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TABLE t (v int)")
            await #expect(throws: Boom.self) {
                try await db.transaction { tx in
                    try await tx.execute("INSERT INTO t VALUES (\(1))")
                    try await tx.execute("INSERT INTO t VALUES (\(2))")
                    throw Boom()
                }
            }
            #expect(try await db.query("SELECT count(*) AS n FROM t").first?["n", as: Int.self] == 0)
            // A failing statement also rolls back what came before it.
            await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.execute("INSERT INTO t VALUES (\(3))")
                    try await tx.execute("INSERT INTO t VALUES (\("not a number"))")
                }
            }
            #expect(try await db.query("SELECT count(*) AS n FROM t").first?["n", as: Int.self] == 0)
            // And a successful one commits.
            try await db.transaction { tx in try await tx.execute("INSERT INTO t VALUES (\(4))") }
            #expect(try await db.query("SELECT count(*) AS n FROM t").first?["n", as: Int.self] == 1)
        }
    }

    @Test func swallowedErrorInsideBodyDoesNotCommit() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TABLE t (v int)")
            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.execute("INSERT INTO t VALUES (\(1))")
                    _ = try? await tx.execute("INSERT INTO t VALUES (\("oops"))")
                }
            }
            #expect(error?.code == .misuse)
            #expect(try await db.query("SELECT count(*) AS n FROM t").first?["n", as: Int.self] == 0)
            // The connection is usable again: no transaction was left open.
            try await db.transaction { tx in try await tx.execute("INSERT INTO t VALUES (\(2))") }
            #expect(try await db.query("SELECT count(*) AS n FROM t").first?["n", as: Int.self] == 1)
        }
    }

    @Test func connectionLostInsideTransactionRetriesOnAFreshSession() async throws {
        try await withTestDatabase { database, db in
            try await db.execute("CREATE TABLE t (v int)")
            let admin = try await database.connect()
            var attempts = 0
            try await db.transaction { tx in
                attempts += 1
                try await tx.execute("INSERT INTO t VALUES (\(attempts))")
                if attempts == 1 {
                    let pid: Int32 = try #require(try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"])
                    try await admin.execute("SELECT pg_terminate_backend(\(pid))")
                    // This statement finds the connection gone; it must not autocommit on a new session.
                    try await tx.execute("INSERT INTO t VALUES (\(100))")
                }
            }
            #expect(attempts == 2)
            let values: [Int] = try await db.query("SELECT v FROM t ORDER BY v").map { try $0["v"] }
            #expect(values == [2])
            await admin.close()
        }
    }

    @Test func serializationFailureIsRetried() async throws {
        try await withTestDatabase { database, db in
            try await db.execute("CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL)")
            try await db.execute("INSERT INTO counter VALUES (1, 0)")
            let other = try await database.connect()
            var attempts = 0
            try await db.transaction(isolation: .repeatableRead) { tx in
                attempts += 1
                let value: Int = try #require(try await tx.query("SELECT value FROM counter WHERE id = 1").first?["value"])
                if attempts == 1 {
                    // A concurrent writer commits after our snapshot was taken: our update must fail with 40001.
                    try await other.execute("UPDATE counter SET value = value + 100 WHERE id = 1")
                }
                try await tx.execute("UPDATE counter SET value = \(value + 1) WHERE id = 1")
            }
            #expect(attempts == 2)
            #expect(try await db.query("SELECT value FROM counter WHERE id = 1").first?["value", as: Int.self] == 101)
            await other.close()
        }
    }

    @Test func retriesAreBounded() async throws {
        try await withTestDatabase { database, db in
            try await db.execute("CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL)")
            try await db.execute("INSERT INTO counter VALUES (1, 0)")
            let other = try await database.connect()
            var attempts = 0
            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction(isolation: .serializable, maxAttempts: 3) { tx in
                    attempts += 1
                    _ = try await tx.query("SELECT value FROM counter WHERE id = 1")
                    try await other.execute("UPDATE counter SET value = value + 1 WHERE id = 1")
                    try await tx.execute("UPDATE counter SET value = 0 WHERE id = 1")
                }
            }
            #expect(error?.sqlState == .serializationFailure)
            #expect(attempts == 3)
            await other.close()
        }
    }

    @Test func nestedTransactionsAreRefused() async throws {
        try await withTestDatabase { _, db in
            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.transaction { _ in }
                }
            }
            #expect(error?.code == .misuse)
        }
    }

    @Test func notifyReachesListenerOnAnotherConnection() async throws {
        try await withTestDatabase { database, listener in
            let sender = try await database.connect()
            try await listener.listen("ccat work")
            #expect(try await listener.waitForNotifications(timeout: .milliseconds(100)).isEmpty)
            let payload = "package 'obs_001' ready; \"quoted\" ✓"
            try await sender.notify("ccat work", payload: payload)
            let received = try await listener.waitForNotifications(timeout: .seconds(60))
            #expect(received.map(\.channel) == ["ccat work"])
            #expect(received.first?.payload == payload)
            // A notification sent inside a rolled-back transaction never arrives.
            await #expect(throws: Boom.self) {
                try await sender.transaction { tx in
                    try await tx.notify("ccat work", payload: "rolled back")
                    throw Boom()
                }
            }
            #expect(try await listener.waitForNotifications(timeout: .milliseconds(300)).isEmpty)
            await sender.close()
        }
    }

    @Test func listenSurvivesReconnect() async throws {
        try await withTestDatabase { database, listener in
            let admin = try await database.connect()
            try await listener.listen("wake")
            let pid: Int32 = try #require(try await listener.query("SELECT pg_backend_pid() AS pid").first?["pid"])
            try await admin.execute("SELECT pg_terminate_backend(\(pid))")
            await #expect(throws: PostgresError.self) { _ = try await listener.waitForNotifications(timeout: .seconds(60)) }
            // The next wait reconnects and renews LISTEN; a notification sent afterwards arrives.
            _ = try await listener.waitForNotifications(timeout: .milliseconds(50))
            try await admin.notify("wake", payload: "again")
            let received = try await listener.waitForNotifications(timeout: .seconds(60))
            #expect(received.first?.payload == "again")
            await admin.close()
        }
    }

    @Test func waitingCanBeCancelled() async throws {
        try await withTestDatabase { _, listener in
            try await listener.listen("never")
            let task = Task { try await listener.waitForNotifications(timeout: .seconds(600)) }
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()
            // The wait must end because of the cancellation, long before its 600 s timeout.
            let ended = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await task.value.isEmpty }
                group.addTask { try await Task.sleep(for: .seconds(30)); return false }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(ended, "waitForNotifications did not return after its task was cancelled")
        }
    }
}
