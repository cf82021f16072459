import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// A scientist's batch job that waits for its data: `#BB_LUA ccat stage ...` through Slurm's
/// burst_buffer/lua plugin and etc/slurm/burst_buffer.lua, on the single-node test cluster, with the
/// daemon, munged and PostgreSQL all real.
@Suite("Slurm-native staging: a batch job waits for its data", .serialized,
       .enabled(if: TestEnvironment.runSlurmTests && TestEnvironment.runPostgresTests && TestEnvironment.runMungeTests
                && TestEnvironment.runS3Tests && (getuid() == 0 || TestEnvironment.isCI)))
struct SlurmStagingTests {
    static let observations = 2

    /// `command` as `user`, with the test cluster's Slurm configuration.
    static func run(as user: String, _ command: [String], slurm: [String: String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runLongProcess("/usr/sbin/runuser", ["-u", user, "--"] + command, environment: slurm)
    }

    /// squeue's reason for a pending job ("" once it left the queue).
    static func reason(_ job: String, slurm: [String: String]) throws -> String {
        try runProcess("/usr/bin/squeue", ["-h", "-j", job, "-o", "%r"], environment: slurm).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func state(_ job: String, slurm: [String: String]) throws -> String {
        let output = try runProcess("/usr/bin/sacct", ["-n", "-X", "-P", "-j", job, "-o", "State"], environment: slurm).stdout
        return output.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    }

    static func jobScript(_ directive: String, output: String) -> String {
        """
        #!/bin/bash
        #SBATCH --time=5
        #SBATCH --output=\(output)
        \(directive)
        echo "request=$CCAT_STAGING_REQUEST directory=$CCAT_STAGED_DIR"
        cd "$CCAT_STAGED_DIR" && sha256sum -c SHA256SUMS

        """
    }

    @Test func aJobWaitsForItsDataRunsOnItAndItsDataGoesWhenItEnds() async throws {
        let slurm = try TestEnvironment.slurmEnvironment()
        let slurmConf = try #require(slurm["SLURM_CONF"])
        let munge = try TestEnvironment.requireMungeSocket()
        let (directory, conninfo, baseEnvironment) = try await DaemonChaosTests.setUp(
            database: "ccat_bb",
            environment: ["DEMO_STAGING_GROUPS": StagingRequestTests.group, "SCHEDULER": "slurm", "DEMO_OBSERVATIONS": String(Self.observations)])
        defer { try? FileManager.default.removeItem(at: directory) }
        chmod(directory.path, 0o755)
        let admin = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "burst buffer test"))
        defer { Task { await admin.close() } }
        try await StagingRequestTests.createUsers(admin: admin)
        let alice = StagingRequestTests.alice, bob = StagingRequestTests.bob
        for user in [alice, bob] {
            _ = try runProcess("/usr/bin/sacctmgr", ["-i", "add", "user", user, "Account=ccat"], environment: slurm)
        }
        // The Slurm user (root on the test cluster) stages for jobs: it needs a login in ccat_scientist.
        if try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = 'root'").isEmpty {
            try await admin.execute("CREATE ROLE root LOGIN")
        }
        try await admin.execute("GRANT ccat_scientist TO root")
        // Which ccat the burst-buffer script runs, against this test's database.
        let settings = URL(fileURLWithPath: slurmConf).deletingLastPathComponent().appendingPathComponent("ccat_burst_buffer.conf")
        try """
            ccat=\(TestEnvironment.binDirectory.appendingPathComponent("ccat").path)
            CCAT_DATABASE_URL=\(conninfo) user=root
            CCAT_MUNGE_SOCKET=\(munge)

            """.write(to: settings, atomically: true, encoding: .utf8)
        let jobs = directory.appendingPathComponent("jobs")
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
        chmod(jobs.path, 0o1777)
        func submit(_ name: String, _ directive: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            let script = jobs.appendingPathComponent("\(name).sh")
            try Self.jobScript(directive, output: jobs.appendingPathComponent("\(name).out").path).write(to: script, atomically: true, encoding: .utf8)
            chmod(script.path, 0o755)
            return try await Self.run(as: alice, ["/usr/bin/sbatch", "--parsable", script.path], slurm: slurm)
        }

        // A directive ccat would not understand is refused by sbatch, with the reason.
        let typo = try await submit("typo", "#BB_LUA ccat stage obz=obs-2026-01 location=ramses_processing")
        #expect(typo.status != 0 && typo.stderr.contains("unknown 'obz=obs-2026-01'"), "\(typo.stderr)")

        // Submitted before anything is archived: Slurm holds it while ccat stages.
        let waiting = try await submit("analysis", "#BB_LUA ccat stage obs=obs-2026-02 location=ramses_processing")
        #expect(waiting.status == 0, "\(waiting.stderr)")
        let job = waiting.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let failing = try await submit("unknown", "#BB_LUA ccat stage obs=obs-1999-01 location=ramses_processing")
        #expect(failing.status == 0, "\(failing.stderr)")
        let failingJob = failing.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? runProcess("/usr/bin/scancel", [job, failingJob], environment: slurm) }
        let held = try await eventually(within: .seconds(120), every: .milliseconds(500)) { try Self.reason(job, slurm: slurm) == "BurstBufferStageIn" }
        #expect(held, "job \(job): \((try? Self.reason(job, slurm: slurm)) ?? "?")")

        var environment = baseEnvironment
        environment["CCAT_MUNGE_SOCKET"] = munge
        environment["SLURM_CONF"] = slurmConf
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory), environment: environment,
                                               logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)

        // Staging that cannot succeed ends the wait with the reason; the script never runs.
        let refused = try await eventually(within: .seconds(180), every: .seconds(1)) {
            try Self.reason(failingJob, slurm: slurm).contains("unknown observation obs-1999-01")
        }
        #expect(refused, "job \(failingJob): \((try? Self.reason(failingJob, slurm: slurm)) ?? "?")")
        #expect(!FileManager.default.fileExists(atPath: jobs.appendingPathComponent("unknown.out").path))

        // The job ran once its data was there, on every file of it, checked against SHA256SUMS.
        let finished = try await eventually(within: .seconds(900), every: .seconds(1)) {
            ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].contains(try Self.state(job, slurm: slurm))
        }
        try #require(finished, "job \(job) did not end: \((try? Self.reason(job, slurm: slurm)) ?? "?"); logs in \(directory.path)")
        #expect(try Self.state(job, slurm: slurm) == "COMPLETED")
        let output = try String(contentsOfFile: jobs.appendingPathComponent("analysis.out").path, encoding: .utf8)
        let request = try #require(try await admin.query("SELECT id, username FROM staging_request WHERE slurm_job_id = \(Int64(job) ?? 0)").first)
        let requestID: Int64 = try request["id"]
        #expect(try request["username"] as String == alice, "the data is the job owner's")
        let registered: Int = try #require(try await admin.query("""
            SELECT count(*)::int AS n FROM raw_data_file f JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id WHERE o.obs_id = 'obs-2026-02'
            """).first)["n"]
        #expect(output.contains("request=\(requestID) directory=") && output.components(separatedBy: ": OK").count - 1 == registered, "\(output)")
        #expect(!output.contains("FAILED"), "\(output)")

        // The job's end released the request and its directory goes.
        let staged = directory.appendingPathComponent("demo/cologne/ramses_processing/\(alice)/\(requestID)").path
        let released = try await eventually(within: .seconds(300), every: .milliseconds(500)) {
            try await StagingRequestTests.status(admin, requestID).status == "RELEASED" && !FileManager.default.fileExists(atPath: staged)
        }
        let finalStatus = try await StagingRequestTests.status(admin, requestID)
        #expect(released, "request \(requestID): \(finalStatus); \(staged) exists: \(FileManager.default.fileExists(atPath: staged))")

        // A scientist cannot take the same path to stage as someone else.
        let bobUID = try #require(getpwnam(bob)).pointee.pw_uid
        let forged = try await StagingRequestTests.Scientist(name: alice, conninfo: conninfo + " user=\(alice)", munge: munge)
            .ccat(["stage", "request", "--slurm-job", job, "--for-uid", String(bobUID), "--obs", "obs-2026-01", "--location", "ramses_processing"])
        let forgedID = try StagingRequestTests.requestID(forged.stdout)
        let decided = try await StagingRequestTests.waitFor(admin, forgedID) { $0 != "SUBMITTED" }
        #expect(decided.status == "REJECTED" && decided.reason?.contains("only the Slurm user") == true, "\(decided)")
    }
}
