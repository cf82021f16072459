import Crypto
import Foundation
import Postgres
import Testing
import TestSupport

/// The whole pipeline through `ccat daemon`, as `make demo` runs it: instrument files to both
/// archive sites (S3 and disk), then the temporary copies deleted.
@Suite("ccat daemon end to end", .serialized)
struct EndToEndTests {
    struct Status: Decodable {
        struct Copies: Decodable { var location: String; var locationType: String; var kind: String; var present: Int; var deleted: Int }
        struct Operations: Decodable { var queue: String; var state: String; var count: Int }
        struct Attention: Decodable { var operationId: Int64 }
        struct Stage: Decodable { var stage: String; var status: String; var count: Int; var bytes: Int64 }
        var files: Int
        var stages: [Stage]
        var packages: Int
        var packagesArchivedEverywhere: Int
        var copies: [Copies]
        var operations: [Operations]
        var attention: [Attention]
    }

    @Test(arguments: TestEnvironment.runSlurmTests ? ["local", "slurm"] : ["local"])
    func observationsEndArchivedAtBothSitesAndTemporaryCopiesGo(_ scheduler: String) async throws {
        _ = try TestEnvironment.requireS3Endpoint()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-e2e-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = "ccat_e2e_\(scheduler)"
        var environment = ProcessInfo.processInfo.environment
        environment.merge(["DEMO_DIR": directory.path, "DEMO_DATABASE": database, "DEMO_OBSERVATIONS": "20", "DEMO_FILES": "3",
                           "DEMO_TIMEOUT": "600", "SCHEDULER": scheduler]) { $1 }
        let run = try await runLongProcess("/bin/bash", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/demo.sh").path,
                                                          TestEnvironment.binDirectory.path], environment: environment)
        #expect(run.status == 0, "demo failed:\n\(run.stdout.suffix(3000))\n\(run.stderr.suffix(3000))")
        // The demo's last step: a scientist stages one observation, it matches the instrument's
        // checksums, and its release removes the directory (scripts/demo.sh fails otherwise).
        #expect(run.stdout.contains("staged files match the instrument's checksums") && run.stdout.contains("released: "), "\(run.stdout.suffix(2000))")

        let conninfo = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("database: ") }).dropFirst("database: ".count)
        func currentStatus() async throws -> Status {
            let json = try await runExecutable("ccat", ["status", "--json"], environment: ["CCAT_DATABASE_URL": String(conninfo)])
            #expect(json.status == 0, "\(json.stderr)")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Status.self, from: Data(json.stdout.utf8))
        }
        // The demo ends when the staged directory is gone; the runner records that cleanup as
        // done in a transaction of its own a moment later.
        var status = try await currentStatus()
        _ = try await eventually(within: .seconds(60), every: .milliseconds(500)) {
            status = try await currentStatus()
            return status.operations.allSatisfy { operation in ["_monitoring", "_fixity_check", "_consistency_audit"].contains { operation.queue.hasSuffix($0) } }
        }
        #expect(status.files == 60)
        #expect(status.packages == 20 && status.packagesArchivedEverywhere == 20)
        // Each archive holds every package; every SOURCE and BUFFER copy existed and was deleted.
        for archive in ["cologne:long_term_archive", "us:long_term_archive"] {
            #expect(status.copies.first { $0.location == archive && $0.kind == "RAW_DATA_PACKAGE" }?.present == 20, "\(archive)")
        }
        for copy in status.copies where copy.locationType == "SOURCE" || copy.locationType == "BUFFER" {
            #expect(copy.present == 0 && copy.deleted > 0, "\(copy.location) \(copy.kind): \(copy.present) present")
        }
        #expect(status.copies.first { $0.location == "ccat:instrument_data" }?.deleted == 60)
        // Every stage that did work reports the bytes it moved, staging and unpacking included.
        for stage in ["raw_data_package", "data_transfer_package", "data_transfer", "unpacking", "long_term_archive_transfer", "staging_job"] {
            let done = status.stages.filter { $0.stage == stage && $0.status == "COMPLETED" }
            #expect(done.count == 1 && done[0].count > 0 && done[0].bytes > 0, "\(stage): \(done)")
        }
        // No stuck or failed work, and no temporary files anywhere.
        // MONITORING checks, fixity passes and audits run on their own schedule and may still sit in
        // the batch queue when the pipeline is done; no other work may be left.
        let scheduled = ["_monitoring", "_fixity_check", "_consistency_audit"]
        let unfinished = status.operations.filter { operation in !scheduled.contains { operation.queue.hasSuffix($0) } }
        #expect(unfinished.isEmpty, "\(unfinished)")
        #expect(status.attention.isEmpty)
        let leftovers = (FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".ccat-partial") || $0.contains("/.ccat-staging/") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        let sourceFiles = (FileManager.default.enumerator(atPath: directory.appendingPathComponent("ccat/instrument_data").path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".fits") }
        #expect(sourceFiles.isEmpty, "source files left: \(sourceFiles.prefix(5))")
        // The disk archive holds one tar per package.
        let archive = directory.appendingPathComponent("us/archive/packages").path
        let tars = try FileManager.default.contentsOfDirectory(atPath: archive).filter { $0.hasSuffix(".tar") }
        #expect(tars.count == 20)

        // The daemon's /metrics as the demo left it, read by Prometheus' own parser, agrees with
        // the catalogue; the dispatcher's submissions show in its histogram (swift-metrics).
        #expect(run.stdout.contains("status page: http://127.0.0.1:"), "the demo did not print the status page's address")
        let metrics = try String(contentsOf: directory.appendingPathComponent("metrics.txt"), encoding: .utf8)
        let samples = try PrometheusSample.parse(metrics)
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? { samples.value(name, labels) }
        #expect(value("ccat_files") == 60)
        #expect(value("ccat_raw_data_packages_archived_everywhere") == 20)
        #expect(value("ccat_copies_present", ["location": "us:long_term_archive", "kind": "RAW_DATA_PACKAGE"]) == 20)
        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: String(conninfo)))
        defer { Task { await db.close() } }
        for row in try await db.query("""
            SELECT ds.short_name || ':' || dl.name AS destination, sum(bytes)::bigint AS bytes FROM transfer_attempt a
            JOIN data_location dl ON dl.id = a.destination_location_id JOIN site ds ON ds.id = dl.site_id
            WHERE a.succeeded AND a.operation_type = 'LONG_TERM_ARCHIVE_TRANSFER' GROUP BY 1
            """) {
            let destination: String = try row["destination"], bytes: Int64 = try row["bytes"]
            #expect(value("ccat_link_bytes_total", ["destination": destination, "work": "LONG_TERM_ARCHIVE_TRANSFER"]) == Double(bytes), "\(destination)")
        }
        let submitted = samples.filter { $0.name == "ccat_dispatch_submission_seconds_count" && $0.labels["outcome"] == "submitted" }
        #expect(submitted.reduce(0) { $0 + $1.value } > 0, "no submissions in the dispatcher's histogram")
        #expect(submitted.allSatisfy { $0.labels["scheduler"] == scheduler })
        // The runners logged in as ccat_demo_runner with their jobs' secrets: every batch job had
        // one, and no file the run left (job scripts, logs, scheduler state, the daemon's log, the
        // page) holds any of them.
        let digests = Set(try await db.query("SELECT runner_secret_digest AS d FROM batch_job").map { try $0["d"] as String? })
        #expect(!digests.contains(nil) && !digests.isEmpty, "a batch job without a runner secret")
        let leaked = try Self.filesHoldingSecrets(under: directory, digests: Set(digests.compactMap { $0 }))
        #expect(leaked.isEmpty, "job secrets found in \(leaked)")
        let jobs = directory.appendingPathComponent("state/jobs")
        let script = try #require((FileManager.default.enumerator(atPath: jobs.path)?.allObjects as? [String] ?? []).first { $0.hasSuffix("job.sh") })
        #expect(try String(contentsOf: jobs.appendingPathComponent(script), encoding: .utf8).contains("user=ccat_demo_runner"),
                "job scripts do not give the runners their own login (runner_database)")
        let page = try String(contentsOf: directory.appendingPathComponent("status.html"), encoding: .utf8)
        #expect(page.contains("data-archived-everywhere=\"20\""))
    }

    /// Files under `directory` holding a 64-hex-digit word whose SHA-256 is one of `digests`.
    static func filesHoldingSecrets(under directory: URL, digests: Set<String>) throws -> [String] {
        let word = try NSRegularExpression(pattern: "[0-9a-f]{64}")
        var found: [String] = []
        for case let path as String in FileManager.default.enumerator(atPath: directory.path) ?? FileManager.DirectoryEnumerator() {
            let url = directory.appendingPathComponent(path)
            // Text only (scripts, logs, records, the page): archives and instrument files are binary.
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                  let data = try? Data(contentsOf: url), data.count < 20_000_000, !data.prefix(8192).contains(0) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            let hit = word.matches(in: text, range: NSRange(text.startIndex..., in: text)).contains { match in
                Range(match.range, in: text).map { digests.contains(SHA256.hash(data: Data(text[$0].utf8)).map { String(format: "%02x", $0) }.joined()) } ?? false
            }
            if hit { found.append(path) }
        }
        return found
    }
}
