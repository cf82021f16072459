import Foundation
import Postgres
import Testing
import TestSupport

/// Two daemons at once, SIGKILLed and restarted at random moments: the run still completes, no
/// work is done twice, and no temporary copy is deleted before every archive site holds the data.
@Suite("ccat daemon: two at once, killed and restarted", .serialized)
struct DaemonChaosTests {
    final class Daemons {
        let arguments: [String]
        let environment: [String: String]
        let logDirectory: URL
        var processes: [Process?]
        var started = 0

        init(count: Int, arguments: [String], environment: [String: String], logDirectory: URL) {
            self.arguments = arguments
            self.environment = environment
            self.logDirectory = logDirectory
            processes = Array(repeating: nil, count: count)
        }

        func start(_ index: Int) throws {
            started += 1
            let process = Process()
            process.executableURL = TestEnvironment.binDirectory.appendingPathComponent("ccat")
            process.arguments = arguments + ["--instance", "daemon-\(index)"]
            process.environment = environment
            let log = logDirectory.appendingPathComponent("daemon-\(index)-\(started).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            processes[index] = process
        }

        func kill(_ index: Int, signal: Int32 = SIGKILL) {
            guard let process = processes[index], process.isRunning else { return }
            Foundation.kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }

        func stopAll() {
            for index in processes.indices { kill(index, signal: SIGTERM) }
        }
    }

    @Test func twoDaemonsKilledAtRandomFinishTheRunWithoutDuplicatesOrEarlyDeletion() async throws {
        _ = try TestEnvironment.requireS3Endpoint()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-chaos-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment.merge(["DEMO_DIR": directory.path, "DEMO_DATABASE": "ccat_chaos", "DEMO_OBSERVATIONS": "20", "DEMO_FILES": "3",
                           "DEMO_SETUP_ONLY": "1", "SCHEDULER": "local"]) { $1 }
        let setup = try runProcess("/bin/bash", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/demo.sh").path,
                                                  TestEnvironment.binDirectory.path], environment: environment)
        try #require(setup.status == 0, "demo set-up failed:\n\(setup.stdout.suffix(2000))\n\(setup.stderr.suffix(2000))")
        let conninfo = String(try #require(setup.stdout.split(separator: "\n").first { $0.hasPrefix("database: ") }).dropFirst("database: ".count))

        let daemons = Daemons(count: 2, arguments: [
            "daemon", "--config", directory.appendingPathComponent("ccat.yaml").path, "--interval", "1", "--poll-interval", "1",
            "--package-settle", "0", "--bundle-max-age", "0", "--bundle-max-bytes", "2000000", "--log-level", "info",
        ], environment: environment.merging(["CCAT_DATABASE_URL": conninfo]) { $1 }, logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)
        try daemons.start(1)

        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "chaos test"))
        defer { Task { await db.close() } }
        func done() async throws -> Bool {
            let row = try #require(try await db.query("""
                SELECT (SELECT count(*) FROM raw_data_package)::int AS packages,
                       (SELECT count(*) FROM raw_data_package p WHERE (
                            SELECT count(DISTINCT l.site_id) FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                            WHERE c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                              AND l.location_type = 'LONG_TERM_ARCHIVE') = 2)::int AS archived,
                       (SELECT count(*) FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                        WHERE c.status = 'PRESENT' AND l.location_type IN ('SOURCE', 'BUFFER'))::int AS temporary
                """).first)
            let packages: Int = try row["packages"], archived: Int = try row["archived"], temporary: Int = try row["temporary"]
            return packages == 20 && archived == 20 && temporary == 0
        }

        var generator = SystemRandomNumberGenerator()
        var kills = 0
        let deadline = ContinuousClock.now + .seconds(300)
        var finished = false
        while ContinuousClock.now < deadline {
            if try await done() { finished = true; break }
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...2500, using: &generator)))
            if kills < 8 {
                let victim = Int.random(in: 0...1, using: &generator)
                daemons.kill(victim)
                kills += 1
                // Sometimes both are down for a moment; the survivor (or the restart) carries on.
                if Bool.random(using: &generator) { try await Task.sleep(for: .milliseconds(500)) }
                try daemons.start(victim)
            }
        }
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("daemon-") }) ?? []
        #expect(finished, "not finished after \(kills) kills; daemon logs in \(logs)")
        #expect(kills >= 3)

        // No work was done twice: one succeeded operation per type and target.
        let twice = try await db.query("""
            SELECT operation_type::text AS type, coalesce(raw_data_package_id, data_transfer_package_id, data_transfer_id,
                   long_term_archive_transfer_id, staging_job_id, physical_copy_id) AS target, count(*)::int AS n
            FROM operation WHERE state = 'succeeded' AND operation_type <> 'MONITORING'
            GROUP BY 1, 2 HAVING count(*) > 1
            """)
        #expect(twice.isEmpty, "operations that succeeded twice: \(twice.count)")
        // Every deleted temporary copy went only after each package in it was verified at both
        // archive sites.
        let early = try await db.query("""
            WITH deleted AS (
                SELECT c.id, c.deleted_at, coalesce(c.raw_data_package_id, f.raw_data_package_id) AS package, c.data_transfer_package_id AS bundle
                FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                LEFT JOIN raw_data_file f ON f.id = c.raw_data_file_id
                WHERE c.status = 'DELETED' AND l.location_type IN ('SOURCE', 'BUFFER')
            ), packages AS (
                SELECT d.id, d.deleted_at, p.id AS package FROM deleted d
                JOIN raw_data_package p ON p.id = d.package OR p.data_transfer_package_id = d.bundle
            )
            SELECT x.id FROM packages x
            WHERE (SELECT count(DISTINCT l.site_id) FROM physical_copy a JOIN data_location l ON l.id = a.data_location_id
                   WHERE a.raw_data_package_id = x.package AND l.location_type = 'LONG_TERM_ARCHIVE'
                     AND a.verified_at IS NOT NULL AND a.verified_at <= x.deleted_at) < 2
            """)
        #expect(early.isEmpty, "copies deleted before both archives held their data: \(early.count)")
        let deleted: Int = try #require(try await db.query("SELECT count(*)::int AS n FROM physical_copy WHERE status = 'DELETED'").first)["n"]
        #expect(deleted >= 60 + 20 * 2)
        // Nothing left half done.
        let stuck: Int = try #require(try await db.query("""
            SELECT count(*)::int AS n FROM operation WHERE state NOT IN ('succeeded', 'cancelled') AND operation_type <> 'MONITORING'
            """).first)["n"]
        #expect(stuck == 0)
    }
}
