import Foundation
import Postgres
import Processes
import Storage
import Testing
import TestSupport

/// The daemon keeps its archives whole by itself: after the demo's observations are archived at
/// both sites, a byte flipped in the US disk archive is found by a fixity pass and an object
/// deleted from Cologne's S3 archive by an audit; both are repaired from the other site through
/// batch jobs, with either scheduler.
@Suite("ccat daemon: fixity, audit and repair through the batch scheduler", .serialized)
struct IntegrityDaemonTests {
    @Test(arguments: TestEnvironment.runSlurmTests ? ["local", "slurm"] : ["local"])
    func damageAtEitherArchiveIsFoundAndRepairedByTheDaemon(_ scheduler: String) async throws {
        let observations = 4
        let slurm = scheduler == "slurm" ? try TestEnvironment.slurmEnvironment() : [:]
        let (directory, conninfo, environment) = try await DaemonChaosTests.setUp(
            database: "ccat_integrity_\(scheduler)", environment: slurm.merging(["SCHEDULER": scheduler, "DEMO_OBSERVATIONS": "\(observations)"]) { $1 })
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "integrity test"))
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory) + ["--fixity-interval", "1"],
                                               environment: environment, logDirectory: directory)
        try daemons.start(0)
        defer { daemons.stopAll() }
        let archived = try await eventually(within: .seconds(300), every: .milliseconds(500)) {
            try await DaemonChaosTests.done(db, observations: observations)
        }
        try #require(archived, "the demo's observations were not archived at both sites in time")

        // Every copy is re-read at each pass, and the storage is audited every few seconds.
        try await db.execute("UPDATE integrity_policy SET fixity_cycle = interval '1 hour', audit_interval = interval '2 seconds'")
        let disk = try #require(try await db.query("""
            SELECT c.id, d.root_path || '/' || c.relative_path AS path FROM physical_copy c
            JOIN disk_data_location d ON d.data_location_id = c.data_location_id
            JOIN data_location l ON l.id = c.data_location_id
            WHERE l.location_type = 'LONG_TERM_ARCHIVE' AND c.status = 'PRESENT' ORDER BY c.id LIMIT 1
            """).first)
        let diskCopy: Int64 = try disk["id"], diskPath: String = try disk["path"]
        let original = try Data(contentsOf: URL(fileURLWithPath: diskPath))
        // In place: the file never has another size, so an audit listing it meanwhile (every 2 s)
        // cannot take it for lost; only fixity can find this.
        try flipByte(diskPath, at: 0)

        let object = try #require(try await db.query("""
            SELECT c.id, c.relative_path, s.endpoint_url, s.bucket, s.region, s.prefix, s.credentials_source FROM physical_copy c
            JOIN s3_data_location s ON s.data_location_id = c.data_location_id
            WHERE c.status = 'PRESENT' AND c.raw_data_package_id <> (SELECT raw_data_package_id FROM physical_copy WHERE id = \(diskCopy))
            ORDER BY c.id DESC LIMIT 1
            """).first)
        let s3Copy: Int64 = try object["id"], key: String = try object["relative_path"]
        let store = S3Store(name: "cologne", endpointURL: try object["endpoint_url"], bucket: try object["bucket"], region: try object["region"],
                            prefix: try object["prefix"], pathStyle: true,
                            credentials: try S3Credentials.load(source: try object["credentials_source"], location: "cologne"))
        try store.delete(key)

        let repaired = try await eventually(within: .seconds(240), every: .milliseconds(500)) {
            try await db.query("""
                SELECT count(DISTINCT f.physical_copy_id)::int AS n FROM integrity_finding f JOIN physical_copy c ON c.id = f.physical_copy_id
                WHERE f.physical_copy_id IN (\(diskCopy), \(s3Copy)) AND f.resolved_at IS NOT NULL AND c.status = 'PRESENT'
                """)[0]["n"] == 2
        }
        let findings = try await db.query("SELECT physical_copy_id, kind::text AS kind, coalesce(detail, '') AS detail FROM integrity_finding ORDER BY id")
        var kinds: [Int64: Set<String>] = [:]
        var listed: [String] = []
        for row in findings {
            let copy: Int64? = try row["physical_copy_id"], kind: String = try row["kind"], detail: String = try row["detail"]
            if let copy { kinds[copy, default: []].insert(kind) }
            listed.append("\(copy.map(String.init) ?? "-") \(kind) \(detail)")
        }
        #expect(repaired, "not both copies repaired in time; findings: \(listed)")
        // A flipped byte is found by reading it back; the deleted object by the audit's listing or
        // by a fixity pass that reaches it first. Which pass comes first is the machine's timing.
        #expect(kinds[diskCopy]?.contains("CORRUPTED") == true, "findings: \(listed)")
        #expect(kinds[s3Copy]?.contains("LOST") == true, "findings: \(listed)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: diskPath)) == original)
        #expect(try store.readBack(key, shouldStop: { false }) != nil)
        // The repairs ran as batch jobs of the archives' own queues.
        let repairs = try await db.query("""
            SELECT o.queue, b.scheduler::text AS scheduler FROM operation o JOIN batch_job b ON b.id = o.batch_job_id
            WHERE o.operation_type = 'ARCHIVE_REPAIR' AND o.state = 'succeeded'
            """)
        #expect(repairs.count == 2)
        for row in repairs {
            #expect(try row["scheduler"] as String == scheduler)
            #expect((try row["queue"] as String).hasSuffix("_archive_repair"))
        }
        daemons.stopAll()
        try await DaemonChaosTests.expectInvariants(db, observations: observations)
    }
}
