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

    /// One test's world: the demo's database and files (Slurm scheduler), the scientists with Slurm
    /// associations, a directory for job scripts and output, and the daemon's environment.
    struct World {
        let slurm: [String: String]
        let munge: String
        let directory: URL
        let conninfo: String
        let baseEnvironment: [String: String]
        let admin: PostgresConnection
        let jobs: URL

        static func make(database: String) async throws -> World {
            let slurm = try TestEnvironment.slurmEnvironment()
            let munge = try TestEnvironment.requireMungeSocket()
            let (directory, conninfo, baseEnvironment) = try await DaemonChaosTests.setUp(
                database: database,
                environment: ["DEMO_STAGING_GROUPS": StagingRequestTests.group, "SCHEDULER": "slurm", "DEMO_OBSERVATIONS": String(SlurmStagingTests.observations)])
            chmod(directory.path, 0o755)
            let admin = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "slurm staging test"))
            try await StagingRequestTests.createUsers(admin: admin)
            for user in [StagingRequestTests.alice, StagingRequestTests.bob] {
                _ = try runProcess("/usr/bin/sacctmgr", ["-i", "add", "user", user, "Account=ccat"], environment: slurm)
            }
            let jobs = directory.appendingPathComponent("jobs")
            try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
            chmod(jobs.path, 0o1777)
            return World(slurm: slurm, munge: munge, directory: directory, conninfo: conninfo, baseEnvironment: baseEnvironment, admin: admin, jobs: jobs)
        }

        func scientist(_ name: String) -> StagingRequestTests.Scientist {
            StagingRequestTests.Scientist(name: name, conninfo: conninfo + " user=\(name)", munge: munge)
        }

        /// The daemon, with Slurm as its scheduler; stop it with `stopAll()`.
        func startDaemon() throws -> DaemonChaosTests.Daemons {
            var environment = baseEnvironment
            environment["CCAT_MUNGE_SOCKET"] = munge
            environment["SLURM_CONF"] = slurm["SLURM_CONF"]
            let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory), environment: environment,
                                                   logDirectory: directory)
            try daemons.start(0)
            return daemons
        }

        func close() {
            try? FileManager.default.removeItem(at: directory)
            let admin = admin
            Task { await admin.close() }
        }
    }

    @Test func aJobWaitsForItsDataRunsOnItAndItsDataGoesWhenItEnds() async throws {
        let world = try await World.make(database: "ccat_bb")
        defer { world.close() }
        let (slurm, munge, directory, conninfo, admin, jobs) = (world.slurm, world.munge, world.directory, world.conninfo, world.admin, world.jobs)
        let slurmConf = try #require(slurm["SLURM_CONF"])
        let alice = StagingRequestTests.alice, bob = StagingRequestTests.bob
        // The Slurm user (root on the test cluster) stages for jobs: it needs a login in ccat_scientist.
        try await StagingRequestTests.ensureLoginRole(admin: admin, "root", in: "ccat_scientist")
        // Which ccat the burst-buffer script runs, against this test's database.
        let settings = URL(fileURLWithPath: slurmConf).deletingLastPathComponent().appendingPathComponent("ccat_burst_buffer.conf")
        try """
            ccat=\(TestEnvironment.binDirectory.appendingPathComponent("ccat").path)
            CCAT_DATABASE_URL=\(conninfo) user=root
            CCAT_MUNGE_SOCKET=\(munge)

            """.write(to: settings, atomically: true, encoding: .utf8)
        func submit(_ name: String, _ directive: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            let script = jobs.appendingPathComponent("\(name).sh")
            try Self.jobScript(directive, output: jobs.appendingPathComponent("\(name).out").path).write(to: script, atomically: true, encoding: .utf8)
            chmod(script.path, 0o755)
            return try await Self.run(as: alice, ["/usr/bin/sbatch", "--parsable", script.path], slurm: slurm)
        }

        // A directive ccat would not understand is refused by sbatch, with the reason.
        let typo = try await submit("typo", "#BB_LUA ccat stage obz=obs-2026-01 location=ramses_processing")
        #expect(typo.status != 0 && typo.stderr.contains("unknown 'obz=obs-2026-01'"), "\(typo.stderr)")
        // A value that would read as an option of ccat (it runs as the Slurm user) is refused too.
        let option = try await submit("option", "#BB_LUA ccat stage obs=--help location=ramses_processing")
        #expect(option.status != 0 && option.stderr.contains("must start with a letter or digit"), "\(option.stderr)")

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

        let daemons = try world.startDaemon()
        defer { daemons.stopAll() }

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

        // 'keep': the job's end leaves the data; the job's owner follows and releases the request herself.
        let kept = try await submit("kept", "#BB_LUA ccat stage obs=obs-2026-01 location=ramses_processing keep")
        let keptJob = kept.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let keptEnded = try await eventually(within: .seconds(900), every: .seconds(1)) {
            ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].contains(try Self.state(keptJob, slurm: slurm))
        }
        try #require(keptEnded && (try Self.state(keptJob, slurm: slurm)) == "COMPLETED", "job \(keptJob): \((try? Self.reason(keptJob, slurm: slurm)) ?? "?")")
        let keptID: Int64 = try #require(try await admin.query("SELECT id FROM staging_request WHERE slurm_job_id = \(Int64(keptJob) ?? 0)").first)["id"]
        // Teardown has run once the job left the queue; the request must still be READY after it.
        #expect(try await eventually(within: .seconds(120), every: .milliseconds(500)) { try Self.reason(keptJob, slurm: slurm).isEmpty })
        #expect(try await StagingRequestTests.status(admin, keptID).status == "READY")
        let owner = world.scientist(alice)
        let followed = try await owner.ccat(["stage", "status", String(keptID), "--json"])
        #expect(followed.status == 0 && followed.stdout.contains("\"status\" : \"READY\""), "\(followed.stdout)\(followed.stderr)")
        let releasedByOwner = try await owner.ccat(["stage", "release", String(keptID)])
        #expect(releasedByOwner.status == 0, "\(releasedByOwner.stderr)")
        #expect(try await StagingRequestTests.status(admin, keptID).status == "RELEASED")

        // A scientist cannot take the same path to stage as someone else.
        let bobUID = try #require(getpwnam(bob)).pointee.pw_uid
        let forged = try await world.scientist(alice).ccat(["stage", "request", "--slurm-job", job, "--for-uid", String(bobUID), "--obs", "obs-2026-01", "--location", "ramses_processing"])
        let forgedID = try StagingRequestTests.requestID(forged.stdout)
        let decided = try await StagingRequestTests.waitFor(admin, forgedID) { $0 != "SUBMITTED" }
        #expect(decided.status == "REJECTED" && decided.reason?.contains("only the Slurm user") == true, "\(decided)")
    }

    @Test func aJobThatDependsOnTheSentinelRunsOnlyOnceTheDataIsReady() async throws {
        let world = try await World.make(database: "ccat_sentinel")
        defer { world.close() }
        let (slurm, directory, admin, jobs) = (world.slurm, world.directory, world.admin, world.jobs)
        let alice = StagingRequestTests.alice
        let scientist = world.scientist(alice)
        // A file whose registered checksum is wrong can never be packaged: its observation waits for ever.
        let source = directory.appendingPathComponent("demo/ccat/instrument_data/obs-2026-77")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try Data(repeating: 7, count: 1000).write(to: source.appendingPathComponent("stuck.fits"))
        let register = try runProcess(TestEnvironment.binDirectory.appendingPathComponent("ccat").path,
                                      ["files", "register", "ccat:instrument_data", "--path", "obs-2026-77/stuck.fits", "--size", "1000",
                                       "--sha256", String(repeating: "0", count: 64), "--obs-id", "obs-2026-77"], environment: world.baseEnvironment)
        #expect(register.status == 0, "\(register.stderr)")

        let daemons = try world.startDaemon()
        defer { daemons.stopAll() }
        func submit(_ name: String, after sentinel: String, reading staged: String) async throws -> String {
            let script = jobs.appendingPathComponent("\(name).sh")
            try """
                #!/bin/bash
                #SBATCH --time=5
                #SBATCH --output=\(jobs.appendingPathComponent("\(name).out").path)
                cd \(staged) && sha256sum -c SHA256SUMS

                """.write(to: script, atomically: true, encoding: .utf8)
            chmod(script.path, 0o755)
            let submitted = try await Self.run(as: alice, ["/usr/bin/sbatch", "--parsable", "--dependency=afterok:\(sentinel)", script.path], slurm: slurm)
            #expect(submitted.status == 0, "\(submitted.stderr)")
            return submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let processing = directory.appendingPathComponent("demo/cologne/ramses_processing/\(alice)").path
        // A request needs the daemon's staging manager alive.
        #expect(try await eventually(within: .seconds(120), every: .milliseconds(300)) {
            try await !admin.query("SELECT 1 FROM service_heartbeat WHERE service_name = 'staging-manager'").isEmpty
        })

        // Data that will be archived: the job starts after READY and finds every file.
        let ready = try await scientist.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing", "--slurm-dependency"])
        #expect(ready.status == 0, "\(ready.stdout)\(ready.stderr)")
        let sentinel = ready.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int64(sentinel) != nil, "stdout must be the job id alone: \(ready.stdout.debugDescription)")
        let requestID: Int64 = try #require(try await admin.query("SELECT id FROM staging_request WHERE sentinel_job_id = \(Int64(sentinel) ?? 0)").first)["id"]
        let job = try await submit("after-ready", after: sentinel, reading: "\(processing)/\(requestID)")
        defer { _ = try? runProcess("/usr/bin/scancel", [job, sentinel], environment: slurm) }
        let finished = try await eventually(within: .seconds(900), every: .seconds(1)) {
            ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"].contains(try Self.state(job, slurm: slurm))
        }
        try #require(finished, "job \(job) did not end: \((try? Self.reason(job, slurm: slurm)) ?? "?"); logs in \(directory.path)")
        #expect(try Self.state(job, slurm: slurm) == "COMPLETED")
        #expect(try await StagingRequestTests.status(admin, requestID).status == "READY")
        let output = try String(contentsOfFile: jobs.appendingPathComponent("after-ready.out").path, encoding: .utf8)
        #expect(output.components(separatedBy: ": OK").count - 1 == 3 && !output.contains("FAILED"), "\(output)")

        // Data that never arrives: once the request is cancelled, the dependent job can never run.
        let stuck = try await scientist.ccat(["stage", "request", "--obs", "obs-2026-77", "--location", "ramses_processing", "--slurm-dependency"])
        #expect(stuck.status == 0, "\(stuck.stdout)\(stuck.stderr)")
        let stuckSentinel = stuck.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let stuckID: Int64 = try #require(try await admin.query("SELECT id FROM staging_request WHERE sentinel_job_id = \(Int64(stuckSentinel) ?? 0)").first)["id"]
        let waiting = try await submit("never", after: stuckSentinel, reading: "\(processing)/\(stuckID)")
        defer { _ = try? runProcess("/usr/bin/scancel", [waiting, stuckSentinel], environment: slurm) }
        #expect(try await eventually(within: .seconds(60), every: .milliseconds(500)) { try Self.reason(waiting, slurm: slurm) == "Dependency" })
        let cancel = try await scientist.ccat(["stage", "cancel", String(stuckID)])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        let never = try await eventually(within: .seconds(120), every: .milliseconds(500)) {
            try Self.reason(waiting, slurm: slurm) == "DependencyNeverSatisfied"
        }
        #expect(never, "job \(waiting): \((try? Self.reason(waiting, slurm: slurm)) ?? "?")")
        #expect(!FileManager.default.fileExists(atPath: jobs.appendingPathComponent("never.out").path))
        let sentinelState: String? = try #require(try await admin.query("SELECT sentinel_state FROM staging_request WHERE id = \(stuckID)").first)["sentinel_state"]
        #expect(sentinelState == "CANCELLED")
    }
}
