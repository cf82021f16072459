import Foundation
import Postgres
import Testing
import TestSupport

/// Job scripts live on shared file systems for as long as their jobs are kept: they never carry a
/// secret, and they are readable by the service user alone.
@Suite("job scripts: no secrets, private to the service user")
struct JobScriptSecrecyTests {
    @Test func aPasswordInTheConnectionStringNeverReachesAJobScript() async throws {
        let (directory, conninfo, baseEnvironment) = try await DaemonChaosTests.setUp(database: "ccat_secrecy")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The test server trusts local connections, so the password is accepted and ignored: the
        // daemon runs with it, and the runners must do without it.
        let secret = "VerySecret-\(UUID().uuidString)"
        // Job scripts then carry the daemon's own connection string (no 'runner_database:').
        let config = directory.appendingPathComponent("demo/ccat.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        try text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("runner_database:") }
            .joined(separator: "\n").write(to: config, atomically: true, encoding: .utf8)
        var environment = baseEnvironment
        environment["CCAT_DATABASE_URL"] = "\(conninfo) password=\(secret)"
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory), environment: environment,
                                               logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)

        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "secrecy test"))
        defer { Task { await db.close() } }
        // Runners reached the database without the password: operations succeed.
        let worked = try await eventually(within: .seconds(300), every: .seconds(1)) {
            try await db.query("SELECT count(*)::int AS n FROM operation WHERE state = 'succeeded'").first?["n", as: Int.self] ?? 0 >= 3
        }
        #expect(worked, "no operation succeeded; see \(directory.path)/daemon-0-1.log")

        let jobs = directory.appendingPathComponent("demo/state/jobs")
        let entries = FileManager.default.enumerator(atPath: jobs.path)?.allObjects as? [String] ?? []
        let scripts = entries.filter { $0.hasSuffix("job.sh") }
        #expect(!scripts.isEmpty)
        for entry in [""] + entries {
            let path = entry.isEmpty ? jobs.path : jobs.appendingPathComponent(entry).path
            var info = stat()
            #expect(lstat(path, &info) == 0)
            if (info.st_mode & S_IFMT) == S_IFDIR || entry.hasSuffix("job.sh") {
                #expect(info.st_mode & 0o077 == 0, "\(path) has mode \(String(info.st_mode & 0o7777, radix: 8))")
            }
            if (info.st_mode & S_IFMT) == S_IFREG {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                #expect(!text.contains(secret), "\(path) holds the database password")
            }
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("daemon-0-1.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("job scripts get it without one"), "the daemon did not say where runners take the password from")
        #expect(!log.contains(secret))
    }
}
