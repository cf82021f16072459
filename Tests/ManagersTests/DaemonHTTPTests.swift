import Foundation
import Processes
import Testing
import TestSupport

/// `ccat daemon --http`: refuses a taken port at once, saying which; serves /healthz while it
/// runs and lets go of the port when it stops.
@Suite("ccat daemon --http", .serialized)
struct DaemonHTTPTests {
    @Test func aTakenPortFailsAtOnceNamingThePort() async throws {
        let holder = try ListeningSocket()
        defer { holder.close() }
        let address = "127.0.0.1:\(holder.port)"
        let scratch = try testScratchDirectory("http-taken")
        // The address is checked before the database: no server is needed to see the refusal.
        let errors = try Self.file(scratch.appendingPathComponent("stderr"))
        let process = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat").path,
                                             ["daemon", "--http", address, "--database", "host=/nonexistent dbname=none"],
                                             environment: ["CCAT_STATE_DIRECTORY": scratch.path, "PATH": "/usr/bin:/bin"],
                                             stdout: .null, stderr: .descriptor(errors.fileDescriptor))
        try errors.close()
        var status: Int32?
        _ = try await eventually(within: .seconds(60), every: .milliseconds(50)) {
            status = try process.poll()
            return status != nil
        }
        if status == nil { process.signal(SIGKILL); _ = try? process.wait() }
        let stderr = try String(contentsOf: scratch.appendingPathComponent("stderr"), encoding: .utf8)
        #expect(status != nil && status != 0, "the daemon did not refuse the taken port: \(stderr)")
        #expect(stderr.contains("cannot listen on \(address)") && stderr.contains("in use"), "\(stderr)")
        #expect(!stderr.contains("database"), "the port must be refused before the database is tried: \(stderr)")
    }

    @Test(.enabled(if: TestEnvironment.runPostgresTests))
    func servesHealthWhileRunningAndLetsGoOfThePortWhenStopped() async throws {
        try await withTestDatabase { database, _ in
            let migrate = try await runExecutable("ccat", ["db", "migrate", "--database", database.conninfo])
            #expect(migrate.status == 0, "\(migrate.stderr)")
            let scratch = try testScratchDirectory("http-serve")
            let log = scratch.appendingPathComponent("daemon.log")
            let output = try Self.file(log)
            let process = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat").path,
                                                 ["daemon", "--http", "127.0.0.1:0", "--database", database.conninfo, "--interval", "1",
                                                  "--instance", "http-test"],
                                                 environment: ["CCAT_STATE_DIRECTORY": scratch.path, "PATH": "/usr/bin:/bin"],
                                                 stdout: .null, stderr: .descriptor(output.fileDescriptor))
            try output.close()
            defer { if process.isRunning { process.signal(SIGKILL); _ = try? process.wait() } }
            var url: String?
            _ = try await eventually(within: .seconds(60), every: .milliseconds(100)) {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                url = text.split(separator: "\n").first { $0.hasPrefix("ccat daemon: status page at ") }
                    .map { String($0.dropFirst("ccat daemon: status page at ".count).prefix { $0 != " " }) }
                return url != nil || !process.isRunning
            }
            let page = try #require(url, "no address in the log: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            // Leadership comes with the first cycle of each service.
            var health = ""
            let leading = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
                health = try await runLongProcess("/usr/bin/curl", ["-sS", "--max-time", "30", page + "healthz"], environment: [:]).stdout
                return health.contains("\"role\" : \"leader\"") && health.contains("\"alert-manager\"")
            }
            #expect(leading, "\(health)")
            #expect(health.contains("\"database\" : \"reachable\""))
            let port = try #require(Int(page.split(separator: ":").last?.filter(\.isNumber) ?? ""))

            process.signal(SIGTERM)
            var status: Int32?
            _ = try await eventually(within: .seconds(60), every: .milliseconds(100)) {
                status = try process.poll()
                return status != nil
            }
            #expect(status == 0, "the daemon did not stop cleanly: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            // The port is free again: something else may listen there.
            let again = try ListeningSocket(port: port)
            again.close()
        }
    }

    static func file(_ url: URL) throws -> FileHandle {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }
}
