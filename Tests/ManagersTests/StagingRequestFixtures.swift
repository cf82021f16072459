import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// The scientists of the staging tests, and how the tests act and wait as them.
extension StagingRequestTests {
    /// Unix users (two in the staging group, one not) and their database logins.
    static func createUsers(admin: PostgresConnection) async throws {
        func sh(_ command: String) throws {
            let result = try runProcess("/bin/sh", ["-c", command])
            guard result.status == 0 else { throw TestSetupError(description: "\(command): \(result.stderr)") }
        }
        // Suites that run at the same time may create them at the same moment: losing that race is fine.
        try sh("getent group \(group) >/dev/null || groupadd \(group) || getent group \(group) >/dev/null")
        for user in [alice, bob] {
            try sh("id \(user) >/dev/null 2>&1 || useradd -M -N -g users -G \(group) -s /usr/sbin/nologin \(user) || id \(user) >/dev/null")
        }
        try sh("id \(outsider) >/dev/null 2>&1 || useradd -M -N -g users -s /usr/sbin/nologin \(outsider) || id \(outsider) >/dev/null")
        for user in [alice, bob, outsider] { try await ensureLoginRole(admin: admin, user, in: "ccat_scientist") }
    }

    /// A database login `name`, member of `group` (roles belong to the whole cluster, so tests
    /// running at the same time may create or grant them at the same moment: losing that race is fine).
    static func ensureLoginRole(admin: PostgresConnection, _ name: String, in group: String) async throws {
        do {
            if try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = \(name)").isEmpty {
                try await admin.execute("CREATE ROLE \(identifier: name) LOGIN")
            }
        } catch let error as PostgresError where error.sqlState?.rawValue == "42710" || error.sqlState?.rawValue == "23505" {
            // Created meanwhile by another test.
        }
        func member() async throws -> Bool {
            try await admin.query("SELECT pg_has_role(\(name), \(group), 'MEMBER') AS member").first?["member"] ?? false
        }
        if try await member() { return }
        do {
            try await admin.execute("GRANT \(identifier: group) TO \(identifier: name)")
        } catch let error as PostgresError {
            // "tuple concurrently updated" when another test granted it at the same moment.
            guard try await member() else { throw error }
        }
    }

    struct Scientist {
        let name: String
        let conninfo: String
        let munge: String

        /// `ccat stage ...` as this user, waited for off the cooperative pool (`--wait` takes minutes).
        func ccat(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            let binary = TestEnvironment.binDirectory.appendingPathComponent("ccat").path
            var environment = ProcessInfo.processInfo.environment
            for key in ["CCAT_DATABASE_URL", "PGHOST", "PGUSER", "PGDATABASE", "CCAT_CONFIG"] { environment.removeValue(forKey: key) }
            let munge = arguments.dropFirst().first == "request" ? ["--munge-socket", self.munge] : []
            return try await runLongProcess("/usr/sbin/runuser", ["-u", name, "--", binary] + arguments + ["--database", conninfo] + munge,
                                            environment: environment)
        }

        func connect() async throws -> PostgresConnection {
            try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "scientist \(name)"))
        }

        /// A raw munge credential made by this user with the `munge` tool.
        func credential(payload: String, socket: String? = nil, ttl: Int? = nil) throws -> String {
            var arguments = ["-u", name, "--", "munge", "-S", socket ?? munge, "-s", payload]
            if let ttl { arguments += ["-t", String(ttl)] }
            let result = try runProcess("/usr/sbin/runuser", arguments)
            guard result.status == 0 else { throw TestSetupError(description: "munge as \(name): \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func requestID(_ output: String) throws -> Int64 {
        guard let match = output.firstMatch(of: /staging request (\d+) submitted/), let id = Int64(match.1) else {
            throw TestSetupError(description: "no request id in: \(output)")
        }
        return id
    }

    static func status(_ db: PostgresConnection, _ id: Int64) async throws -> (status: String, reason: String?) {
        let row = try #require(try await db.query("SELECT status::text AS status, reason FROM staging_request WHERE id = \(id)").first)
        return (try row["status"], try row["reason"])
    }

    static func waitFor(_ db: PostgresConnection, _ id: Int64, seconds: Int = 120, until done: (String) -> Bool) async throws -> (status: String, reason: String?) {
        try await waitFor(db, id, seconds: seconds, untilState: { done($0.status) })
    }

    static func waitFor(_ db: PostgresConnection, _ id: Int64, seconds: Int = 120,
                        untilState done: ((status: String, reason: String?)) -> Bool) async throws -> (status: String, reason: String?) {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var last = try await status(db, id)
        while ContinuousClock.now < deadline {
            last = try await status(db, id)
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(300))
        }
        return last
    }

    static func sha256(_ path: String) throws -> String {
        let result = try runProcess("/usr/bin/sha256sum", [path])
        return String(result.stdout.prefix(64))
    }

    /// Polls until `path` is gone or five minutes passed.
    static func waitUntilGone(_ path: String) async throws {
        _ = try await eventually(within: .seconds(300), every: .milliseconds(500)) { !FileManager.default.fileExists(atPath: path) }
    }
}
