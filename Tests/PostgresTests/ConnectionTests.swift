import Foundation
@testable import Postgres
import Testing
import TestSupport

@Suite("Connection, binds and types against a real PostgreSQL", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct ConnectionTests {
    static let hostile = [
        "it's", "\"double\"", "back\\slash\\\\", "'; DROP TABLE site; --", "Grüße, Köln — 観測 🔭",
        "line one\nline two\ttab", "$1 $$ dollar", "NULL", "",
    ]

    @Test func hostileStringsRoundTripUnchanged() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TABLE site (id serial PRIMARY KEY, name text NOT NULL)")
            for value in Self.hostile {
                let echoed = try await db.query("SELECT \(value)::text AS v").first?.decode(String.self, column: "v")
                #expect(echoed == value)
                let id: Int = try #require(try await db.query("INSERT INTO site (name) VALUES (\(value)) RETURNING id").first?["id"])
                let stored: String? = try await db.query("SELECT name FROM site WHERE id = \(id)").first?["name"]
                #expect(stored == value)
            }
            // The table survived the injection attempt, with one row per value.
            let count: Int? = try await db.query("SELECT count(*) AS n FROM site").first?["n"]
            #expect(count == Self.hostile.count)
        }
    }

    @Test func nulCharactersAreRejectedBeforeSending() async throws {
        try await withTestDatabase { _, db in
            let error = await #expect(throws: PostgresError.self) {
                try await db.query("SELECT \("a\u{0}b")::text")
            }
            #expect(error?.code == .invalidParameter)
            #expect(error?.description.contains("$1") == true)
        }
    }

    @Test func typedValuesRoundTrip() async throws {
        try await withTestDatabase { _, db in
            let date = Date(timeIntervalSince1970: 1_795_245_451.123456)
            let uuid = UUID()
            let bytes = Data((0...255).map(UInt8.init))
            let strings = ["a", "b c", "quote\"", "NULL", ""]
            let row = try #require(try await db.query("""
                SELECT \(Int64.max) AS big, \(Int32.min) AS small, \(Int16(-7)) AS tiny, \(3.25) AS real,
                       \(true) AS yes, \(date) AS at, \(uuid) AS id, \(bytes) AS raw, \(strings) AS list,
                       \([1, 2, 3]) AS numbers, \(Optional<Int>.none) AS nothing,
                       \(Double.infinity) AS inf, \(Date.distantFuture) AS forever,
                       \(Date(timeIntervalSince1970: -63_000_000_000)) AS ancient, '0044-03-15 12:00:00+00 BC'::timestamptz AS ides
                """).first)
            #expect(try row["ancient", as: Date.self].timeIntervalSince1970 == -63_000_000_000)
            #expect(PostgresTimestamp.parse("0044-03-15 12:00:00+00 BC") == (try row["ides", as: Date.self]))
            #expect(try row["big", as: Int64.self] == Int64.max)
            #expect(try row["small", as: Int32.self] == Int32.min)
            #expect(try row["tiny", as: Int16.self] == -7)
            #expect(try row["real", as: Double.self] == 3.25)
            #expect(try row["yes", as: Bool.self] == true)
            #expect(abs(try row["at", as: Date.self].timeIntervalSince(date)) < 1e-6)
            #expect(try row["id", as: UUID.self] == uuid)
            #expect(try row["raw", as: Data.self] == bytes)
            #expect(try row["list", as: [String].self] == strings)
            #expect(try row["numbers", as: [Int].self] == [1, 2, 3])
            #expect(try row["nothing", as: Int?.self] == nil)
            #expect(try row["inf", as: Double.self] == .infinity)
            #expect(try row["forever", as: Date.self] == .distantFuture)
        }
    }

    enum Mood: String, PostgresCodable, Decodable, CaseIterable { case happy, sad }

    struct Person: Decodable, Equatable {
        var id: Int
        var fullName: String
        var mood: Mood
        var moods: [Mood]
        var nickName: String?
    }

    @Test func rowsDecodeIntoStructsAndEnums() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
            try await db.execute("CREATE TABLE person (id int PRIMARY KEY, full_name text, mood mood, moods mood[], nick_name text)")
            try await db.execute("INSERT INTO person VALUES (1, \("Ada"), \(Mood.sad), \([Mood.happy, .sad]), NULL)")
            let people = try await db.query("SELECT * FROM person WHERE mood = \(Mood.sad)").decode(Person.self)
            #expect(people == [Person(id: 1, fullName: "Ada", mood: .sad, moods: [.happy, .sad], nickName: nil)])
        }
    }

    @Test func decodingErrorsNameTheColumn() async throws {
        try await withTestDatabase { _, db in
            let row = try #require(try await db.query("SELECT 'abc'::text AS label, NULL::int AS missing, 'joy'::text AS feeling").first)
            let mismatch = #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "label") }
            #expect(mismatch?.code == .decoding)
            #expect(mismatch?.description.contains("column 'label'") == true)
            #expect(mismatch?.description.contains("text") == true)
            let null = #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "missing") }
            #expect(null?.description.contains("column 'missing'") == true)
            #expect(null?.description.contains("NULL") == true)
            let absent = #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "nope") }
            #expect(absent?.description.contains("label, missing, feeling") == true)
            let badEnum = #expect(throws: PostgresError.self) { try row.decode(Mood.self, column: "feeling") }
            #expect(badEnum?.description.contains("happy, sad") == true)
        }
    }

    @Test func constraintViolationsCarryTheirSQLState() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE CHECK (code <> 'forbidden'))")
            try await db.execute("CREATE TABLE child (parent_id int REFERENCES parent (id))")
            let secret = "top-secret-value-42"
            try await db.execute("INSERT INTO parent VALUES (1, \(secret))")

            let duplicate = await #expect(throws: PostgresError.self) { try await db.execute("INSERT INTO parent VALUES (2, \(secret))") }
            #expect(duplicate?.sqlState == .uniqueViolation)
            #expect(duplicate?.constraintName == "parent_code_key")
            // Plain description never shows bound values; the debug description has the server's DETAIL.
            #expect(duplicate?.description.contains(secret) == false)
            #expect(duplicate?.debugDescription.contains(secret) == true)

            let orphan = await #expect(throws: PostgresError.self) { try await db.execute("INSERT INTO child VALUES (\(99))") }
            #expect(orphan?.sqlState == .foreignKeyViolation)

            let check = await #expect(throws: PostgresError.self) { try await db.execute("INSERT INTO parent VALUES (3, \("forbidden"))") }
            #expect(check?.sqlState == .checkViolation)

            let syntax = await #expect(throws: PostgresError.self) { try await db.execute("SELECT \("hunter2-password")::int") }
            #expect(syntax?.sqlState == .invalidTextRepresentation)
            #expect(syntax?.description.contains("hunter2-password") == false)

            switch duplicate?.sqlState {
            case .uniqueViolation?: break
            default: Issue.record("SQLSTATE must pattern-match its named constant")
            }
        }
    }

    @Test func badConnectionStringsGiveOneClearLine() async throws {
        let unreachable = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect(PostgresConfiguration(conninfo: "host=127.0.0.1 port=1 dbname=x user=y connect_timeout=3"))
        }
        #expect(unreachable?.code == .connectionFailed)
        #expect(unreachable?.description.contains("127.0.0.1") == true)
        #expect(unreachable?.description.contains("\n") == false)

        let socket = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect(PostgresConfiguration(conninfo: "host=/nonexistent/socket/dir dbname=x"))
        }
        #expect(socket?.description.contains("/nonexistent/socket/dir") == true)
        #expect(socket?.description.contains("\n") == false)

        let malformed = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect(PostgresConfiguration(conninfo: "host='unterminated"))
        }
        #expect(malformed?.code == .connectionFailed)
        #expect(malformed?.description.contains("\n") == false)
    }

    @Test func lostConnectionIsReestablished() async throws {
        try await withTestDatabase { database, db in
            let admin = try await database.connect()
            let firstPID: Int32 = try #require(try await db.query("SELECT pg_backend_pid() AS pid").first?["pid"])
            try await admin.execute("SELECT pg_terminate_backend(\(firstPID))")
            // The statement in flight when the server went away fails: its outcome is unknown.
            let lost = await #expect(throws: PostgresError.self) { try await db.query("SELECT 1") }
            #expect(lost?.code == .connectionLost)
            #expect(lost?.isTransient == true)
            // The next one reconnects transparently.
            let secondPID: Int32 = try #require(try await db.query("SELECT pg_backend_pid() AS pid").first?["pid"])
            #expect(secondPID != firstPID)
            await admin.close()
        }
    }

    /// Waits until the server runs `statement` in this test's database (a busy machine may take a
    /// while to send it; a cancel before that is a different path).
    func waitUntilActive(_ database: TestDatabase, _ statement: String) async throws -> Bool {
        let watcher = try await database.connect(applicationName: "cancel watcher")
        defer { Task { await watcher.close() } }
        return try await eventually(within: .seconds(60), every: .milliseconds(50)) {
            try await watcher.query("""
                SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = \(statement) AND state = 'active' AND datname = current_database()
                """).first?["n", as: Int.self] == 1
        }
    }

    @Test func cancellingTheTaskCancelsTheStatement() async throws {
        try await withTestDatabase { database, db in
            let task = Task { try await db.query("SELECT pg_sleep(60)") }
            let active = try await waitUntilActive(database, "SELECT pg_sleep(60)")
            #expect(active, "the statement never started on the server")
            task.cancel()
            let error = await #expect(throws: PostgresError.self) { try await task.value }
            #expect(error?.sqlState == .queryCanceled)
            // The connection is usable afterwards.
            #expect(try await db.query("SELECT 1 AS one").first?["one", as: Int.self] == 1)
        }
    }

    /// A script's later statements are cancelled as its first: the wait for each result watches
    /// for cancellation, not only the wait for the first.
    @Test func cancellingTheTaskCancelsALaterStatementOfAScript() async throws {
        try await withTestDatabase { database, db in
            // The server sends a script's results when its buffer fills: the 100 kB row makes it
            // send the first statement's complete result while the sleep still runs.
            let script = "SELECT 1; SELECT repeat('x', 100000); SELECT pg_sleep(60); SELECT 2"
            let task = Task { try await db.executeScript(script) }
            let active = try await waitUntilActive(database, script)
            #expect(active, "the script never started on the server")
            // pg_stat_activity shows the whole script; give its first statement time to finish.
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            let error = await #expect(throws: PostgresError.self) { try await task.value }
            #expect(error?.sqlState == .queryCanceled, "\(String(describing: error))")
            #expect(try await db.query("SELECT 1 AS one").first?["one", as: Int.self] == 1)
        }
    }

    /// COPY to or from the client is refused with a clear error, and the connection stays usable.
    @Test func copyThroughTheClientIsRefusedAndTheConnectionStaysUsable() async throws {
        try await withTestDatabase { _, db in
            try await db.execute("CREATE TABLE copied (n int)")
            for statement in ["COPY (SELECT generate_series(1, 100000)) TO STDOUT", "COPY copied FROM STDIN"] {
                let error = await #expect(throws: PostgresError.self) { try await db.query(PostgresQuery(stringLiteral: statement)) }
                #expect(error?.code == .misuse && error?.message.contains("COPY") == true, "\(statement): \(String(describing: error))")
                #expect(try await db.query("SELECT count(*)::int AS n FROM copied").first?["n", as: Int.self] == 0, "\(statement)")
            }
        }
    }

    /// A cancel may come before the statement was sent, while it is on its way (the server drops
    /// a cancel request that reaches it before it starts the statement), or while it runs. Each
    /// must end the call with an error; a lost cancel would let pg_sleep(30) succeed.
    @Test func aCancelAtAnyMomentEndsTheCall() async throws {
        try await withTestDatabase { database, db in
            var outcomes: [String: Int] = [:]
            for attempt in 0..<30 {
                let task = Task { try await db.query("SELECT pg_sleep(30)") }
                // From at once to 5.6 ms later, and a last one once the server runs it.
                if attempt == 29 {
                    #expect(try await waitUntilActive(database, "SELECT pg_sleep(30)"), "the statement never started on the server")
                } else if attempt > 0 {
                    try await Task.sleep(for: .microseconds(attempt * 200))
                }
                task.cancel()
                do {
                    _ = try await task.value
                    Issue.record("attempt \(attempt): the statement ran to its end although the task was cancelled")
                } catch let error as PostgresError {
                    #expect(error.code == .cancelled || error.sqlState == .queryCanceled, "attempt \(attempt): \(error)")
                    outcomes[error.code == .cancelled ? "before sending" : "on the server", default: 0] += 1
                }
                #expect(try await db.query("SELECT 1 AS one").first?["one", as: Int.self] == 1)
            }
            #expect(outcomes["on the server", default: 0] > 0, "\(outcomes)")
        }
    }
}
