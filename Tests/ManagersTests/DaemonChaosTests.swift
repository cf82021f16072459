import Foundation
import OpsDB
import Postgres
import Processes
import Scheduling
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
        var processes: [ChildProcess?]
        var started = 0

        init(count: Int, arguments: [String], environment: [String: String], logDirectory: URL) {
            self.arguments = arguments
            self.environment = environment
            self.logDirectory = logDirectory
            processes = Array(repeating: nil, count: count)
        }

        func start(_ index: Int) throws {
            started += 1
            let log = logDirectory.appendingPathComponent("daemon-\(index)-\(started).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            defer { try? handle.close() }
            processes[index] = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat").path,
                                                      arguments + ["--instance", "daemon-\(index)"], environment: environment,
                                                      stdout: .descriptor(handle.fileDescriptor), stderr: .descriptor(handle.fileDescriptor))
        }

        func kill(_ index: Int, signal: Int32 = SIGKILL) {
            guard let process = processes[index], process.isRunning else { return }
            process.signal(signal)
            _ = try? process.wait()
        }

        func stopAll() {
            for index in processes.indices { kill(index, signal: SIGTERM) }
        }
    }

    /// Sets up the demo topology and files (no daemon) in a fresh directory and database.
    static func setUp(database: String, environment extra: [String: String] = [:]) async throws -> (directory: URL, conninfo: String, environment: [String: String]) {
        _ = try TestEnvironment.requireS3Endpoint()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-chaos-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment.merge(["DEMO_DIR": directory.appendingPathComponent("demo").path, "DEMO_DATABASE": database, "DEMO_OBSERVATIONS": "20",
                           "DEMO_FILES": "3", "DEMO_SETUP_ONLY": "1", "SCHEDULER": "local"]) { $1 }
        environment.merge(extra) { $1 }
        let setup = try await runLongProcess("/bin/bash", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/demo.sh").path,
                                                            TestEnvironment.binDirectory.path], environment: environment)
        guard setup.status == 0 else {
            throw TestSetupError(description: "demo set-up failed:\n\(setup.stdout.suffix(2000))\n\(setup.stderr.suffix(2000))")
        }
        guard let line = setup.stdout.split(separator: "\n").first(where: { $0.hasPrefix("database: ") }) else {
            throw TestSetupError(description: "demo set-up printed no database line")
        }
        let conninfo = String(line.dropFirst("database: ".count))
        environment["CCAT_DATABASE_URL"] = conninfo
        return (directory, conninfo, environment)
    }

    static func daemonArguments(_ directory: URL) -> [String] {
        ["daemon", "--config", directory.appendingPathComponent("demo/ccat.yaml").path, "--interval", "1", "--poll-interval", "1",
         "--package-settle", "0", "--bundle-max-age", "0", "--bundle-max-bytes", "2000000", "--log-level", "info"]
    }

    /// Every package verified at both archive sites and no SOURCE or BUFFER copy left.
    static func done(_ db: PostgresConnection, observations: Int) async throws -> Bool {
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
        return packages == observations && archived == observations && temporary == 0
    }

    /// No work done twice, no temporary copy deleted before both archives held its data, nothing
    /// left half done.
    static func expectInvariants(_ db: PostgresConnection, observations: Int) async throws {
        let twice = try await db.query("""
            SELECT operation_type::text AS type, coalesce(raw_data_package_id, data_transfer_package_id, data_transfer_id,
                   long_term_archive_transfer_id, staging_job_id, physical_copy_id) AS target, count(*)::int AS n
            FROM operation WHERE state = 'succeeded' AND operation_type NOT IN ('MONITORING', 'FIXITY_CHECK', 'CONSISTENCY_AUDIT')
            GROUP BY 1, 2 HAVING count(*) > 1
            """)
        #expect(twice.isEmpty, "operations that succeeded twice: \(twice.count)")
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
        // Three source files and two buffer copies (telescope, archive site) per observation at least.
        #expect(deleted >= observations * 3 + observations * 2)
        // The last deletion marks its copies before its runner records the operation as done, in
        // a second transaction: give that a moment.
        var stuck = 0
        _ = try await eventually(within: .seconds(60), every: .milliseconds(250)) {
            stuck = try #require(try await db.query("""
                SELECT count(*)::int AS n FROM operation WHERE state NOT IN ('succeeded', 'cancelled')
                  AND operation_type NOT IN ('MONITORING', 'FIXITY_CHECK', 'CONSISTENCY_AUDIT')
                """).first)["n"]
            return stuck == 0
        }
        #expect(stuck == 0, "operations neither succeeded nor cancelled a minute after the run ended")
        // The counts the triggers kept through kills and restarts are what a fresh count says.
        let tally = try await OpsDB(db).checkCatalogueTally()
        #expect(tally.agrees, "the kept tally differs from a fresh count: \(tally)")
    }

    @Test func twoDaemonsKilledAtRandomFinishTheRunWithoutDuplicatesOrEarlyDeletion() async throws {
        // 40 observations: long enough a run that the kills land while work is in flight.
        let (directory, conninfo, environment) = try await Self.setUp(database: "ccat_chaos", environment: ["DEMO_OBSERVATIONS": "40"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemons = Daemons(count: 2, arguments: Self.daemonArguments(directory), environment: environment, logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)
        try daemons.start(1)

        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "chaos test"))
        defer { Task { await db.close() } }
        // Eight kills at random moments from the start, each counted when the run was still going.
        var generator = SystemRandomNumberGenerator()
        var killsMidRun = 0
        for _ in 0..<8 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...1500, using: &generator)))
            if try await !Self.done(db, observations: 40) { killsMidRun += 1 }
            let victim = Int.random(in: 0...1, using: &generator)
            daemons.kill(victim)
            // Sometimes both are down for a moment; the survivor (or the restart) carries on.
            if Bool.random(using: &generator) { try await Task.sleep(for: .milliseconds(500)) }
            try daemons.start(victim)
        }
        let finished = try await eventually(within: .seconds(300), every: .seconds(1)) { try await Self.done(db, observations: 40) }
        #expect(finished, "not finished after the kills; daemon logs in \(directory.path)")
        #expect(killsMidRun >= 1, "every kill came after the run had finished")
        try await Self.expectInvariants(db, observations: 40)

        // SIGTERM: both stop on their own, exit 0, and every service says so in service_heartbeat.
        for index in 0..<2 {
            let process = try #require(daemons.processes[index])
            process.signal(SIGTERM)
            let stopBy = ContinuousClock.now + .seconds(60)
            var status: Int32?
            while status == nil, ContinuousClock.now < stopBy {
                status = try process.poll()
                if status == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == 0, "daemon-\(index) did not stop cleanly after SIGTERM (status \(status.map(String.init) ?? "still running"))")
        }
        let services = try await db.query("""
            SELECT service_name, status::text AS status FROM service_heartbeat WHERE instance IN ('daemon-0', 'daemon-1')
            """)
        #expect(services.count == 24, "twelve services (eleven managers and the alert manager) in each of the two daemons")
        let notStopped = try services.filter { try $0["status"] as String != "STOPPED" }.map { try $0["service_name"] as String }
        #expect(notStopped.isEmpty, "services not recorded as stopped: \(notStopped)")
    }

    @Test func postgresRestartedMidwayAndTheRunCompletes() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-pg-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: scratch) }
        // A private cluster, so restarting it disturbs no other test.
        let clusterEnvironment = ["CCAT_DEV_DIR": scratch.appendingPathComponent("pg").path, "XDG_STATE_HOME": scratch.appendingPathComponent("state").path]
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        chmod(scratch.path, 0o755)
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/local-postgres.sh").path
        // system(3), not Process: Foundation's Process waits for the whole session of the child,
        // and the server started here outlives the script.
        func cluster(_ action: String) -> Int32 {
            system("CCAT_DEV_DIR='\(clusterEnvironment["CCAT_DEV_DIR"]!)' XDG_STATE_HOME='\(clusterEnvironment["XDG_STATE_HOME"]!)' '\(script)' \(action) >>'\(scratch.path)/cluster.log' 2>&1")
        }
        try #require(cluster("start") == 0, "the private PostgreSQL cluster did not start; see \(scratch.path)/cluster.log")
        defer { _ = cluster("destroy") }
        let (directory, conninfo, environment) = try await Self.setUp(database: "ccat", environment: [
            "DEMO_PG_DIR": clusterEnvironment["CCAT_DEV_DIR"]!, "XDG_STATE_HOME": clusterEnvironment["XDG_STATE_HOME"]!])
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemons = Daemons(count: 1, arguments: Self.daemonArguments(directory), environment: environment, logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)

        var db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "restart test"))
        // Wait until work is under way, then stop the server, keep it down a while, start it.
        let underway = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < underway {
            let moving: Int = try #require(try await db.query("SELECT count(*)::int AS n FROM operation WHERE state <> 'pending'").first)["n"]
            if moving >= 5 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        await db.close()
        #expect(cluster("stop") == 0)
        try await Task.sleep(for: .seconds(4))
        #expect(cluster("start") == 0)

        db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "restart test"))
        defer { Task { [db] in await db.close() } }
        let finished = try await eventually(within: .seconds(300), every: .seconds(1)) { try await Self.done(db, observations: 20) }
        #expect(finished, "not finished after the restart; daemon log in \(directory.path)")
        #expect(daemons.processes[0]?.isRunning == true, "the daemon exited instead of reconnecting")
        try await Self.expectInvariants(db, observations: 20)
    }
}
