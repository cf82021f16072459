import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("ccat db and ccat-runner check as a user runs them", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct CommandLineTests {
    @Test func twoConcurrentMigrateProcessesBothSucceed() async throws {
        try await withTestDatabase { database, _ in
            // Waited for off Swift's cooperative pool, whose two threads the other tests need.
            async let first = offPool { try runExecutable("ccat", ["db", "migrate", "--json", "--database", database.conninfo]) }
            async let second = offPool { try runExecutable("ccat", ["db", "migrate", "--json", "--database", database.conninfo]) }
            let results = try await [first, second]
            for result in results {
                #expect(result.status == 0, "ccat db migrate failed: \(result.stderr)")
            }
            struct Output: Decodable { var applied: [Applied]; struct Applied: Decodable { var version: Int } }
            // Each migration is applied exactly once, by one process or the other.
            let applied = try results.flatMap { try JSONDecoder().decode(Output.self, from: Data($0.stdout.utf8)).applied.map(\.version) }
            #expect(applied.sorted() == (try Migrator.bundled()).migrations.map(\.version))

            let status = try await runExecutable("ccat", ["db", "status", "--json"], environment: ["CCAT_DATABASE_URL": database.conninfo])
            #expect(status.status == 0, "\(status.stderr)")
            struct Status: Decodable {
                var upToDate: Bool
                var pending: Int
                var database: DB
                struct DB: Decodable { var source: String; var target: Target }
                struct Target: Decodable { var database: String }
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let parsed = try decoder.decode(Status.self, from: Data(status.stdout.utf8))
            #expect(parsed.upToDate && parsed.pending == 0)
            #expect(parsed.database.source == "environment")
            #expect(parsed.database.target.database == database.name)

            let check = try await runExecutable("ccat-runner", ["check", "--database", database.conninfo])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout.contains("schema:    matches this build"))
        }
    }

    @Test func pendingMigrationsAreReportedAndStopTheRunner() async throws {
        try await withTestDatabase { database, _ in
            let status = try await runExecutable("ccat", ["db", "status", "--database", database.conninfo])
            #expect(status.status == 0)
            #expect(status.stdout.contains("pending migration"))
            #expect(status.stdout.contains("from:      the --database option"))
            let check = try await runExecutable("ccat-runner", ["check", "--database", database.conninfo])
            #expect(check.status == 3)
        }
    }

    @Test func unreachableServerGivesOneLineAndNonZeroExit() throws {
        let result = try runExecutable("ccat", ["db", "status", "--database", "host=127.0.0.1 port=1 dbname=ops connect_timeout=3"])
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(result.stderr)")
        #expect(result.stderr.contains("cannot connect to PostgreSQL"))
        #expect(result.stderr.contains("127.0.0.1"))
        #expect(result.stderr.contains("--database option"))
        #expect(result.stdout.isEmpty)
    }

    @Test func passwordsNeverReachTheOutput() async throws {
        let result = try await runExecutable("ccat", ["db", "status", "--database", "postgresql://ops:VerySecret123@127.0.0.1:1/ops?connect_timeout=3"])
        #expect(result.status != 0)
        #expect(!result.stderr.contains("VerySecret123"))
        #expect(!result.stdout.contains("VerySecret123"))
    }

    @Test func libpqServiceFileIsHonoured() async throws {
        try await withTestDatabase { database, _ in
            // An admin hands out access as a pg_service.conf entry; ccat needs nothing else.
            let options = try PostgresConnInfo.parse(database.conninfo)
            let serviceFile = FileManager.default.temporaryDirectory.appendingPathComponent("pg_service-\(UUID().uuidString).conf")
            let body = "[ccat_ops]\n" + options.map { "\($0.keyword)=\($0.value)" }.joined(separator: "\n") + "\n"
            try body.write(to: serviceFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: serviceFile) }
            let result = try await runExecutable("ccat", ["db", "status", "--json"],
                                           environment: ["PGSERVICEFILE": serviceFile.path, "PGSERVICE": "ccat_ops"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\"source\" : \"libpq-environment\""))
            #expect(result.stdout.contains("\"database\" : \"\(database.name)\""))
        }
    }
}
