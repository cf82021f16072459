import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// `ccat find`, `ccat stage request --dry-run`, and the files a staged directory carries about
/// itself, as a scientist on the demo's catalogue.
@Suite("finding data and knowing the cost before asking", .serialized,
       .enabled(if: TestEnvironment.runPostgresTests && TestEnvironment.runMungeTests && TestEnvironment.runS3Tests && (getuid() == 0 || TestEnvironment.isCI)))
struct FindAndDryRunTests {
    static let observations = 3

    static func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test func findDryRunAndAStagedDirectoryThatDescribesItself() async throws {
        let munge = try TestEnvironment.requireMungeSocket()
        let (directory, conninfo, baseEnvironment) = try await DaemonChaosTests.setUp(
            database: "ccat_find", environment: ["DEMO_STAGING_GROUPS": StagingRequestTests.group, "DEMO_OBSERVATIONS": String(Self.observations)])
        defer { try? FileManager.default.removeItem(at: directory) }
        chmod(directory.path, 0o755)
        let admin = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "find test"))
        defer { Task { await admin.close() } }
        try await StagingRequestTests.createUsers(admin: admin)
        let alice = StagingRequestTests.Scientist(name: StagingRequestTests.alice, conninfo: conninfo + " user=\(StagingRequestTests.alice)", munge: munge)
        var environment = baseEnvironment
        environment["CCAT_MUNGE_SOCKET"] = munge
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory), environment: environment,
                                               logDirectory: directory)
        defer { daemons.stopAll() }

        // Before anything is archived, find says so; --archived leaves those out.
        try await admin.execute("""
            UPDATE executed_obs_unit SET start_time = timestamptz '2026-11-01T00:00:00Z' + (substring(obs_id from '..$')::int - 1) * interval '1 day'
            """)
        let early = try Self.json(try await alice.ccat(["find", "--json"]).stdout) as? [[String: Any]]
        #expect(early?.count == Self.observations)
        #expect(early?.allSatisfy { ($0["archive_sites"] as? [String])?.isEmpty == true } == true, "\(String(describing: early))")
        let earlyArchived = try await alice.ccat(["find", "--archived"])
        #expect(earlyArchived.status == 0 && earlyArchived.stdout.contains("no observation matches"), "\(earlyArchived.stdout)")

        try daemons.start(0)
        var archived = false
        for _ in 0..<1200 where !archived {
            archived = try await DaemonChaosTests.done(admin, observations: Self.observations)
            if !archived { try await Task.sleep(for: .milliseconds(500)) }
        }
        try #require(archived, "the pipeline did not archive the demo data; logs in \(directory.path)")

        // find: every observation, its files and bytes as registered, archived at both sites.
        let found = try #require(try Self.json(try await alice.ccat(["find", "--json", "--archived"]).stdout) as? [[String: Any]])
        #expect(found.map { $0["obs_id"] as? String } == ["obs-2026-01", "obs-2026-02", "obs-2026-03"])
        for observation in found {
            let obsID = try #require(observation["obs_id"] as? String)
            let registered = try #require(try await admin.query("""
                SELECT count(*)::int AS files, sum(size_bytes)::bigint AS bytes FROM raw_data_file f
                JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id WHERE o.obs_id = \(obsID)
                """).first)
            #expect(observation["files"] as? Int == (try registered["files"] as Int))
            #expect((observation["bytes"] as? NSNumber)?.int64Value == (try registered["bytes"] as Int64))
            #expect(observation["packages"] as? Int == 1 && observation["archived_packages"] as? Int == 1)
            #expect(observation["archive_sites"] as? [String] == ["cologne", "us"])
            #expect(observation["instruments"] as? [String] == ["primecam"])
        }
        // Patterns, instruments and times narrow it; SQL's own wildcards are plain characters.
        let byPattern = try await alice.ccat(["find", "--obs", "obs-*-02", "--json"])
        #expect((try Self.json(byPattern.stdout) as? [[String: Any]])?.map { $0["obs_id"] as? String } == ["obs-2026-02"], "\(byPattern.stdout)")
        let underscore = try await alice.ccat(["find", "--obs", "obs_2026_0?"])
        #expect(underscore.status == 0 && underscore.stdout.contains("no observation matches"), "\(underscore.stdout)")
        let byTime = try await alice.ccat(["find", "--from", "2026-11-02", "--to", "2026-11-03", "--json"])
        #expect((try Self.json(byTime.stdout) as? [[String: Any]])?.map { $0["obs_id"] as? String } == ["obs-2026-02"], "\(byTime.stdout)")
        let otherInstrument = try await alice.ccat(["find", "--instrument", "chai"])
        #expect(otherInstrument.stdout.contains("no observation matches"), "\(otherInstrument.stdout)")
        let text = try await alice.ccat(["find", "--instrument", "primecam/mkid-1"])
        #expect(text.status == 0 && text.stdout.contains("obs-2026-03") && text.stdout.contains("3 observations, 9 files"), "\(text.stdout)")

        // --dry-run: the package, the archive it would come from, the quota; nothing is submitted.
        let package = try #require(try await admin.query("""
            SELECT p.name, p.size_bytes, p.checksum FROM raw_data_package p JOIN executed_obs_unit o ON o.id = p.executed_obs_unit_id
            WHERE o.obs_id = 'obs-2026-02'
            """).first)
        let packageBytes: Int64 = try package["size_bytes"]
        try await admin.execute("UPDATE processing_policy SET quota_bytes_per_user = \(packageBytes + 10)")
        let dryRun = try await alice.ccat(["stage", "request", "--obs", "obs-2026-02", "--location", "ramses_processing", "--dry-run", "--json"])
        #expect(dryRun.status == 0, "\(dryRun.stdout)\(dryRun.stderr)")
        let plan = try #require(try Self.json(dryRun.stdout) as? [String: Any])
        let packages = try #require(plan["packages"] as? [[String: Any]])
        let packageName: String = try package["name"]
        #expect(packages.count == 1 && packages.first?["package"] as? String == packageName)
        let archives = (packages.first?["archives"] as? [[String: Any]])?.map { "\($0["site"] ?? "").\($0["location"] ?? "")" }
        // ramses_processing is at Cologne: Cologne's archive first, the US one as the alternative.
        #expect(archives == ["cologne.long_term_archive", "us.long_term_archive"], "\(dryRun.stdout)")
        #expect((plan["bytes"] as? NSNumber)?.int64Value == packageBytes)
        let quota = try #require(plan["quota"] as? [String: Any])
        #expect((quota["held_bytes"] as? NSNumber)?.int64Value == 0 && (quota["after_bytes"] as? NSNumber)?.int64Value == packageBytes)
        #expect(quota["exceeded"] as? Bool == false)
        #expect(plan["estimate"] == nil, "nothing was staged yet, so there is nothing to estimate from: \(dryRun.stdout)")
        try await admin.execute("UPDATE processing_policy SET quota_bytes_per_user = \(packageBytes - 1)")
        let over = try await alice.ccat(["stage", "request", "--obs", "obs-2026-02", "--location", "ramses_processing", "--dry-run"])
        #expect(over.status == 1 && over.stdout.contains("OVER QUOTA") && over.stdout.contains("cologne.long_term_archive"), "\(over.stdout)\(over.stderr)")
        let submitted: Int = try #require(try await admin.query("SELECT count(*)::int AS n FROM staging_request").first)["n"]
        #expect(submitted == 0)
        try await admin.execute("UPDATE processing_policy SET quota_bytes_per_user = NULL")

        // Staged for real: SHA256SUMS checks offline, PROVENANCE.json says what was read from where.
        let run = try await alice.ccat(["stage", "request", "--obs", "obs-2026-02", "--location", "ramses_processing", "--wait", "--timeout", "600"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let id = try StagingRequestTests.requestID(run.stdout)
        let staged = directory.appendingPathComponent("demo/cologne/ramses_processing/\(StagingRequestTests.alice)/\(id)").path
        let check = try runProcess("/usr/sbin/runuser", ["-u", StagingRequestTests.alice, "--", "/bin/sh", "-c", "cd \"$1\" && sha256sum -c SHA256SUMS", "sh", staged])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let registered = try await admin.query("""
            SELECT relative_path, checksum FROM raw_data_file f JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id
            WHERE o.obs_id = 'obs-2026-02' ORDER BY relative_path
            """).map { "\(try $0["checksum"] as String)  \(try $0["relative_path"] as String)" }
        let sums = try String(contentsOfFile: staged + "/SHA256SUMS", encoding: .utf8)
        #expect(sums.split(separator: "\n").map(String.init) == registered, "\(sums)")
        #expect(check.stdout.components(separatedBy: ": OK").count - 1 == registered.count, "\(check.stdout)")
        // A file changed after staging is caught by the same offline check.
        let first: String = try #require(try await admin.query("""
            SELECT min(relative_path) AS path FROM raw_data_file f JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id
            WHERE o.obs_id = 'obs-2026-02'
            """).first)["path"]
        let handle = try #require(FileHandle(forWritingAtPath: staged + "/" + first))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([0x5A]))
        try handle.close()
        let tampered = try runProcess("/usr/sbin/runuser", ["-u", StagingRequestTests.alice, "--", "/bin/sh", "-c", "cd \"$1\" && sha256sum -c SHA256SUMS", "sh", staged])
        #expect(tampered.status != 0 && tampered.stdout.contains("FAILED"), "\(tampered.stdout)")

        let provenance = try #require(try Self.json(try String(contentsOfFile: staged + "/PROVENANCE.json", encoding: .utf8)) as? [String: Any])
        #expect((provenance["request"] as? NSNumber)?.int64Value == id)
        #expect(provenance["user"] as? String == StagingRequestTests.alice)
        #expect(provenance["location"] as? String == "cologne.ramses_processing")
        let stagedPackage = try #require((provenance["packages"] as? [[String: Any]])?.first)
        #expect(stagedPackage["name"] as? String == packageName)
        #expect(stagedPackage["sha256"] as? String == (try package["checksum"] as String))
        #expect(stagedPackage["files"] as? Int == registered.count)
        let archive = try #require(stagedPackage["archive"] as? [String: Any])
        #expect(archive["site"] as? String == "cologne" && archive["location"] as? String == "long_term_archive", "\(provenance)")
        var info = stat()
        let aliceUID = try #require(getpwnam(StagingRequestTests.alice)).pointee.pw_uid
        #expect(stat(staged + "/PROVENANCE.json", &info) == 0 && info.st_uid == aliceUID)

        // Now that something was staged here, a dry run estimates the time from it.
        let estimated = try await alice.ccat(["stage", "request", "--obs", "obs-2026-03", "--location", "ramses_processing", "--dry-run", "--json"])
        let estimate = try #require((try Self.json(estimated.stdout) as? [String: Any])?["estimate"] as? [String: Any], "\(estimated.stdout)")
        #expect(((estimate["bytes_per_second"] as? NSNumber)?.doubleValue ?? 0) > 0 && estimate["based_on_operations"] as? Int == 1)
    }
}
