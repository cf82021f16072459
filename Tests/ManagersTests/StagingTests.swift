import Auth
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// munge itself, through the local munged (and a second one with another key).
@Suite("munge credentials", .enabled(if: TestEnvironment.runMungeTests))
struct MungeCredentialTests {
    @Test func roundTripCarriesUidGidAndPayloadOnce() throws {
        let munge = Munge(socket: try TestEnvironment.requireMungeSocket())
        let credential = try munge.encode(Data("hello".utf8))
        let identity = try munge.decode(credential)
        #expect(identity.uid == geteuid())
        #expect(identity.gid == getegid())
        #expect(String(decoding: identity.payload, as: UTF8.self) == "hello")
        #expect(identity.encodedAt.map { abs($0.timeIntervalSinceNow) < 60 } == true)
        let replay = #expect(throws: MungeError.self) { try munge.decode(credential) }
        #expect(replay?.kind == .replayed)
        #expect(replay?.uid == geteuid())
    }

    @Test func expiredForeignAndMalformedCredentialsAreRefused() async throws {
        let munge = Munge(socket: try TestEnvironment.requireMungeSocket())
        let short = try munge.encode(Data("soon gone".utf8), ttl: 1)
        try await Task.sleep(for: .milliseconds(2200))
        #expect((#expect(throws: MungeError.self) { try munge.decode(short) })?.kind == .expired)

        let foreign = try Munge(socket: try TestEnvironment.requireMungeSocket(instance: "foreign")).encode(Data("other key".utf8))
        let forged = #expect(throws: MungeError.self) { try munge.decode(foreign) }
        #expect(forged?.kind == .invalid)
        #expect(forged?.isCredentialProblem == true)

        #expect((#expect(throws: MungeError.self) { try munge.decode("not a credential") })?.kind == .malformed)
    }

    @Test func anAbsentMungedIsNotACredentialProblem() throws {
        let error = #expect(throws: MungeError.self) { try Munge(socket: "/nonexistent/munge.socket").encode(Data()) }
        #expect(error?.kind == .unavailable)
        #expect(error?.isCredentialProblem == false)
        #expect(error?.description.contains("is munged running?") == true)
    }
}

/// `--wait` output: a bar redrawn in place on a terminal, plain lines without control characters
/// in a log, one line per step.
@Suite("staging progress line")
struct StagingProgressLineTests {
    let progress = StagingProgress(stagingRequestID: 1, packages: 4, packagesStaged: 1, bytes: 4_000_000_000, bytesStaged: 1_000_000_000,
                                   startedAt: Date(timeIntervalSince1970: 1000), lastStagedAt: nil)

    @Test func terminalRedrawsOneLineWithABar() {
        let line = StagingProgressLine(isTerminal: true, width: 20)
        let text = line.text(status: .staging, progress: progress, reason: nil, now: Date(timeIntervalSince1970: 1010))
        #expect(text.hasPrefix("[#####...............] STAGING  1/4 packages  1.0 GB of 4.0 GB  100.0 MB/s  about 30 s left"))
        var key: String?
        #expect(line.update(text, status: .staging, progress: progress, reason: nil, previousKey: &key) == "\r" + text + "\u{1B}[K")
    }

    @Test func logGetsPlainLinesOnlyWhenSomethingChanged() {
        let line = StagingProgressLine(isTerminal: false)
        var key: String?
        let first = line.text(status: .staging, progress: progress, reason: nil, now: Date(timeIntervalSince1970: 1010))
        let written = line.update(first, status: .staging, progress: progress, reason: nil, previousKey: &key)
        #expect(written == first + "\n")
        #expect(written?.unicodeScalars.allSatisfy { $0 == "\n" || !CharacterSet.controlCharacters.contains($0) } == true)
        // Same step, only the rate moved: nothing new for a log.
        let later = line.text(status: .staging, progress: progress, reason: nil, now: Date(timeIntervalSince1970: 1020))
        #expect(line.update(later, status: .staging, progress: progress, reason: nil, previousKey: &key) == nil)
        var next = progress
        next.packagesStaged = 2
        next.bytesStaged = 2_000_000_000
        #expect(line.update(line.text(status: .staging, progress: next, reason: nil), status: .staging, progress: next, reason: nil,
                            previousKey: &key) != nil)
    }
}

/// Scientists' staging requests end to end: two unix users, the real munged, PostgreSQL's
/// row-level security, the daemon, and the local scheduler and (where it runs) the Slurm test cluster.
@Suite("staging requests from scientists", .serialized,
       .enabled(if: TestEnvironment.runPostgresTests && TestEnvironment.runMungeTests && TestEnvironment.runS3Tests && (getuid() == 0 || TestEnvironment.isCI)))
struct StagingRequestTests {
    static let group = "ccatsci"
    static let alice = "ccat_sci_a"
    static let bob = "ccat_sci_b"
    static let outsider = "ccat_sci_c"
    /// obs-2026-01 to -05: the test stages the first three. Few, so that the Slurm case does not
    /// crowd the single test node that the end-to-end test shares.
    static let observations = 5

    @Test(arguments: TestEnvironment.runSlurmTests ? ["local", "slurm"] : ["local"])
    func scientistsStageTheirOwnDataAndNothingElse(_ scheduler: String) async throws {
        let munge = try TestEnvironment.requireMungeSocket()
        let foreignMunge = try TestEnvironment.requireMungeSocket(instance: "foreign")
        let (directory, conninfo, baseEnvironment) = try await DaemonChaosTests.setUp(
            database: "ccat_staging_\(scheduler)",
            environment: ["DEMO_STAGING_GROUPS": Self.group, "SCHEDULER": scheduler, "DEMO_OBSERVATIONS": String(Self.observations)])
        defer { try? FileManager.default.removeItem(at: directory) }
        chmod(directory.path, 0o755)
        let admin = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "staging test"))
        defer { Task { await admin.close() } }
        try await Self.createUsers(admin: admin)
        let alice = Scientist(name: Self.alice, conninfo: conninfo + " user=\(Self.alice)", munge: munge)
        let bob = Scientist(name: Self.bob, conninfo: conninfo + " user=\(Self.bob)", munge: munge)
        let outsider = Scientist(name: Self.outsider, conninfo: conninfo + " user=\(Self.outsider)", munge: munge)
        let processing = directory.appendingPathComponent("demo/cologne/ramses_processing").path

        // No daemon yet: nothing is submitted, and the scientist is told why.
        let early = try await alice.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing"])
        #expect(early.status != 0)
        #expect(early.stderr.contains("daemon has never run"), "\(early.stderr)")

        var environment = baseEnvironment
        environment["CCAT_MUNGE_SOCKET"] = munge
        if scheduler == "slurm" { environment["SLURM_CONF"] = try TestEnvironment.slurmEnvironment()["SLURM_CONF"] }
        // One MONITORING check, at the start: a later one during the failover below would find
        // Cologne's archive down, and staging would rightly go to the US copy without trying it.
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory) + ["--monitoring-interval", "86400"],
                                               environment: environment, logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)
        var archived = false
        // Batch jobs on the shared two-core Slurm node may queue behind other tests' jobs.
        for _ in 0..<1200 where !archived {
            archived = try await DaemonChaosTests.done(admin, observations: Self.observations)
            if !archived { try await Task.sleep(for: .milliseconds(500)) }
        }
        try #require(archived, "the pipeline did not archive the demo data; logs in \(directory.path)")

        // Mistakes a scientist can make, said before anything is submitted.
        let unknown = try await alice.ccat(["stage", "request", "--obs", "obs-1999-01", "--location", "ramses_processing"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown observation obs-1999-01"), "\(unknown.stderr)")
        let notProcessing = try await alice.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "buffer"])
        #expect(notProcessing.status != 0 && notProcessing.stderr.contains("'buffer' is not a PROCESSING location"), "\(notProcessing.stderr)")
        let notAllowed = try await outsider.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing"])
        #expect(notAllowed.status != 0 && notAllowed.stderr.contains("allows the groups"), "\(notAllowed.stderr)")
        try await admin.execute("UPDATE processing_policy SET quota_bytes_per_user = 1000")
        let overQuota = try await alice.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing"])
        #expect(overQuota.status != 0 && overQuota.stderr.contains("quota exceeded"), "\(overQuota.stderr)")
        try await admin.execute("UPDATE processing_policy SET quota_bytes_per_user = NULL")

        // Both stage the same observation and wait; a log (not a terminal) gets plain lines.
        let aliceRun = try await alice.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing", "--wait", "--timeout", "600"])
        #expect(aliceRun.status == 0, "\(aliceRun.stdout)\n\(aliceRun.stderr)")
        #expect(aliceRun.stderr.contains("READY"))
        #expect(!aliceRun.stderr.contains("\r") && !aliceRun.stderr.contains("\u{1B}"), "control characters in a log: \(aliceRun.stderr.debugDescription)")
        let bobRun = try await bob.ccat(["stage", "request", "--obs", "obs-2026-01", "--location", "ramses_processing", "--wait", "--timeout", "600"])
        #expect(bobRun.status == 0, "\(bobRun.stdout)\n\(bobRun.stderr)")
        let aliceID = try Self.requestID(aliceRun.stdout)
        let bobID = try Self.requestID(bobRun.stdout)

        // Files: original relative paths, owned by the requester, private, verified.
        let files = try await admin.query("""
            SELECT relative_path, checksum FROM raw_data_file f JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id
            WHERE o.obs_id = 'obs-2026-01' ORDER BY relative_path
            """)
        #expect(files.count == 3)
        for (user, id) in [(Self.alice, aliceID), (Self.bob, bobID)] {
            let uid = try #require(getpwnam(user)).pointee.pw_uid
            var info = stat()
            #expect(stat("\(processing)/\(user)", &info) == 0 && info.st_uid == uid && info.st_mode & 0o777 == 0o700)
            #expect(stat("\(processing)/\(user)/\(id)", &info) == 0 && info.st_uid == uid && info.st_mode & 0o077 == 0)
            for file in files {
                let path = "\(processing)/\(user)/\(id)/\(try file["relative_path"] as String)"
                #expect(stat(path, &info) == 0 && info.st_uid == uid, "\(path) not owned by \(user)")
                #expect(try Self.sha256(path) == (try file["checksum"] as String))
            }
            let copies: Int = try #require(try await admin.query("""
                SELECT count(*)::int AS n FROM physical_copy c JOIN staging_job j ON j.id = c.staging_job_id
                WHERE j.staging_request_id = \(id) AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                """).first)["n"]
            #expect(copies == 3)
        }
        let peek = try runProcess("/usr/sbin/runuser", ["-u", Self.bob, "--", "cat", "\(processing)/\(Self.alice)/\(aliceID)/\(try files[0]["relative_path"] as String)"])
        #expect(peek.status != 0, "bob could read alice's staged file")

        // Each sees, cancels and releases only their own; the database enforces it, not the CLI.
        let bobList = try await bob.ccat(["stage", "list", "--json"])
        #expect(bobList.status == 0)
        #expect(bobList.stdout.contains("\"id\" : \(bobID)") && !bobList.stdout.contains("\"id\" : \(aliceID)"), "\(bobList.stdout)")
        #expect(try await bob.ccat(["stage", "status", "\(aliceID)"]).status != 0)
        let bobCancels = try await bob.ccat(["stage", "release", "\(aliceID)"])
        #expect(bobCancels.status != 0 && bobCancels.stderr.contains("does not exist or is not yours"), "\(bobCancels.stderr)")
        #expect(try await bob.ccat(["stage", "cancel", "\(aliceID)"]).status != 0)
        let bobDB = try await bob.connect()
        let visible: [Int64] = try await bobDB.query("SELECT id FROM staging_request").map { try $0["id"] }
        #expect(visible == [bobID])
        let forbidden = await #expect(throws: PostgresError.self) { try await bobDB.query("SELECT id FROM raw_data_file LIMIT 1") }
        #expect(forbidden?.sqlState?.rawValue == "42501")
        // A staging admin sees everyone's requests.
        try await admin.execute("GRANT ccat_staging_admin TO \(identifier: Self.outsider)")
        let adminList = try await outsider.ccat(["stage", "list", "--json"])
        try await admin.execute("REVOKE ccat_staging_admin FROM \(identifier: Self.outsider)")
        #expect(adminList.stdout.contains("\"id\" : \(aliceID)") && adminList.stdout.contains("\"id\" : \(bobID)"), "\(adminList.stdout)\(adminList.stderr)")
        let statusJSON = try await alice.ccat(["stage", "status", "\(aliceID)", "--json"])
        #expect(statusJSON.stdout.contains("\"status\" : \"READY\"") && statusJSON.stdout.contains("\"packages_staged\" : 1"), "\(statusJSON.stdout)")

        // Credentials that must not pass: replayed, expired, made with another key, another user's.
        let aliceDB = try await alice.connect()
        defer { Task { await aliceDB.close(); await bobDB.close() } }
        let selection = try #require(try await admin.query("SELECT selection::text AS s, credential FROM staging_request WHERE id = \(aliceID)").first)
        let selectionJSON: String = try selection["s"]
        let location: Int64 = try #require(try await admin.query("SELECT id FROM data_location WHERE name = 'ramses_processing'").first)["id"]
        func insert(_ db: PostgresConnection, _ credential: String) async throws -> Int64 {
            try #require(try await db.query("""
                INSERT INTO staging_request (credential, selection, destination_location_id) VALUES (\(credential), \(selectionJSON)::jsonb, \(location))
                RETURNING id
                """).first)["id"]
        }
        let payload = #"{"destination":"ramses_processing","nonce":"N","selection":"# + selectionJSON + #","version":1}"#
        let replayed = try await insert(aliceDB, try selection["credential"])
        let expiring = try alice.credential(payload: payload.replacingOccurrences(of: "N", with: "e"), ttl: 1)
        try await Task.sleep(for: .milliseconds(2200))
        let expired = try await insert(aliceDB, expiring)
        let forged = try await insert(aliceDB, try alice.credential(payload: payload.replacingOccurrences(of: "N", with: "f"), socket: foreignMunge))
        let borrowed = try await insert(aliceDB, try bob.credential(payload: payload.replacingOccurrences(of: "N", with: "b")))
        for (id, expected) in [(replayed, "replayed"), (expired, "expired"), (forged, "not made with this cluster's munge key"),
                               (borrowed, "unix user \(Self.bob)")] {
            let result = try await Self.waitFor(admin, id) { $0 != "SUBMITTED" }
            #expect(result.status == "REJECTED", "request \(id) (\(expected)): \(result)")
            #expect(result.reason?.contains(expected) == true, "request \(id): \(result.reason ?? "no reason")")
        }
        // A row whose selection differs from what the credential signed.
        let tampered = try #require(try await aliceDB.query("""
            INSERT INTO staging_request (credential, selection, destination_location_id)
            VALUES (\(try alice.credential(payload: payload.replacingOccurrences(of: "N", with: "t"))), '{"observations": ["obs-2026-02"]}'::jsonb, \(location))
            RETURNING id
            """).first)["id"] as Int64
        let tamperedResult = try await Self.waitFor(admin, tampered) { $0 != "SUBMITTED" }
        #expect(tamperedResult.status == "REJECTED" && tamperedResult.reason?.contains("differs from what its credential signed") == true,
                "\(tamperedResult)")

        // Data not archived yet: the request waits, then completes. The new file is registered as
        // if a day from now, so that the daemon (package settle 0) leaves it unpackaged until the
        // test has seen the request wait, however slowly the machine lets it look.
        let newObservation = directory.appendingPathComponent("demo/ccat/instrument_data/obs-2026-99")
        try FileManager.default.createDirectory(at: newObservation, withIntermediateDirectories: true)
        try Data(repeating: 7, count: 300_000).write(to: newObservation.appendingPathComponent("late.fits"))
        try await admin.execute("ALTER TABLE raw_data_file ALTER COLUMN registered_at SET DEFAULT now() + interval '1 day'")
        let scan = try await runExecutable("ccat", ["files", "scan", "ccat:instrument_data", "--settle", "0", "--instrument", "primecam/mkid-1",
                                              "--database", conninfo])
        try await admin.execute("ALTER TABLE raw_data_file ALTER COLUMN registered_at SET DEFAULT now()")
        #expect(scan.status == 0, "\(scan.stderr)")
        let lateRun = try await alice.ccat(["stage", "request", "--obs", "obs-2026-99", "--location", "ramses_processing"])
        #expect(lateRun.status == 0, "\(lateRun.stderr)")
        #expect(lateRun.stderr.contains("note: 1 file is not packaged yet"), "\(lateRun.stderr)")
        let lateID = try Self.requestID(lateRun.stdout)
        // Accepted first, then given its reason in the same cycle: wait for both, not the instant between.
        let waiting = try await Self.waitFor(admin, lateID) { $0.status != "SUBMITTED" && ($0.status != "ACCEPTED" || $0.reason != nil) }
        #expect(waiting.status == "ACCEPTED" && waiting.reason == "waiting: 1 file is not packaged yet", "\(waiting)")
        // The file's time comes: it is packaged, archived, and the request staged.
        try await admin.execute("UPDATE raw_data_file SET registered_at = now() WHERE registered_at > now()")
        let late = try await Self.waitFor(admin, lateID, seconds: 600) { ["READY", "FAILED", "REJECTED"].contains($0) }
        #expect(late.status == "READY", "\(late)")
        #expect(FileManager.default.fileExists(atPath: "\(processing)/\(Self.alice)/\(lateID)/obs-2026-99/late.fits"))

        // The preferred archive (Cologne's S3, same site) is down, and no check has noticed yet:
        // staging tries it, then reads the US copy.
        let endpoint: String = try #require(try await admin.query("SELECT endpoint_url FROM s3_data_location").first)["endpoint_url"]
        try await admin.execute("UPDATE s3_data_location SET endpoint_url = 'http://127.0.0.1:9'")
        let failover = try await bob.ccat(["stage", "request", "--obs", "obs-2026-02", "--location", "ramses_processing", "--wait", "--timeout", "600"])
        try await admin.execute("UPDATE s3_data_location SET endpoint_url = \(endpoint)")
        #expect(failover.status == 0, "\(failover.stdout)\n\(failover.stderr)")
        let failoverID = try Self.requestID(failover.stdout)
        let logPath: String = try #require(try await admin.query("""
            SELECT o.log_path FROM operation o JOIN staging_job j ON j.id = o.staging_job_id
            WHERE j.staging_request_id = \(failoverID) AND o.operation_type = 'STAGING' AND o.state = 'succeeded'
            """).first)["log_path"]
        let log = try String(contentsOfFile: logPath, encoding: .utf8)
        let tried = log.range(of: "could not fetch"), fromUS = log.range(of: "us/archive", options: .backwards)
        #expect(tried != nil && fromUS != nil && tried!.lowerBound < fromUS!.lowerBound, "\(log)")

        // Alice releases: her directory goes; Bob's copy of the same observation stays.
        let release = try await alice.ccat(["stage", "release", "\(aliceID)"])
        #expect(release.status == 0, "\(release.stderr)")
        let aliceDirectory = "\(processing)/\(Self.alice)/\(aliceID)"
        try await Self.waitUntilGone(aliceDirectory)
        #expect(!FileManager.default.fileExists(atPath: aliceDirectory))
        #expect(FileManager.default.fileExists(atPath: "\(processing)/\(Self.bob)/\(bobID)/\(try files[0]["relative_path"] as String)"))
        // The cleanup removes the directory first and marks its copies when it commits.
        var left = 0
        _ = try await eventually(within: .seconds(60), every: .milliseconds(250)) {
            left = try #require(try await admin.query("""
                SELECT count(*)::int AS n FROM physical_copy c JOIN staging_job j ON j.id = c.staging_job_id
                WHERE j.staging_request_id = \(aliceID) AND c.status <> 'DELETED'
                """).first)["n"]
            return left == 0
        }
        #expect(left == 0, "copies of a released request not marked DELETED a minute after its directory went")
        let cancelReady = try await bob.ccat(["stage", "cancel", "\(bobID)"])
        #expect(cancelReady.status != 0 && cancelReady.stderr.contains("release it"), "\(cancelReady.stderr)")
        let again = try await alice.ccat(["stage", "release", "\(aliceID)"])
        #expect(again.status != 0 && again.stderr.contains("RELEASED"), "\(again.stderr)")
        // The archived copies were only read.
        let archiveCopies = try await admin.query("""
            SELECT c.status::text AS status, count(*)::int AS n FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
            WHERE l.location_type = 'LONG_TERM_ARCHIVE' GROUP BY 1
            """).map { (try $0["status"] as String, try $0["n"] as Int) }
        #expect(archiveCopies.count == 1 && archiveCopies.first?.0 == "PRESENT" && (archiveCopies.first?.1 ?? 0) >= 2 * Self.observations, "\(archiveCopies)")

        // Bob never releases: once the location's retention ran out the request expires and its
        // directory goes too.
        try await admin.execute("UPDATE staging_request SET expires_at = now() WHERE id = \(bobID)")
        let expiredRequest = try await Self.waitFor(admin, bobID) { $0 != "READY" }
        #expect(expiredRequest.status == "EXPIRED", "\(expiredRequest)")
        let bobDirectory = "\(processing)/\(Self.bob)/\(bobID)"
        try await Self.waitUntilGone(bobDirectory)
        #expect(!FileManager.default.fileExists(atPath: bobDirectory))

        // The daemon stops: new requests are refused with a clear reason.
        daemons.stopAll()
        let down = try await alice.ccat(["stage", "request", "--obs", "obs-2026-03", "--location", "ramses_processing"])
        #expect(down.status != 0 && down.stderr.contains("daemon is not running"), "\(down.stderr)")
    }
}
