import CCatConfig
import Foundation
import Logging
import Managers
import Monitor
import OpsDB
import Postgres
import Processes
import Testing
import TestSupport

/// The daemon's HTTP side on a catalogue with real archived data: /metrics read by Prometheus'
/// own parser agrees with the database, the status page in headless Chromium shows the stages, a
/// link's bytes and an intervention with its fix.
@Suite(.serialized, .enabled(if: TestEnvironment.runPostgresTests && TestEnvironment.runS3Tests))
struct MonitoringTests {
    @Test func metricsAgreeWithTheCatalogueAndThePageShowsIt() async throws {
        let chromium = try TestEnvironment.chromium()
        try await ArchiveSites.with { sites in
            let db = sites.db
            // One operation needs a person: the page must show it with the command that fixes it.
            let stuck = try await sites.operation(.archiveRepair, at: sites.disk, .none)
            _ = try await db.connection.execute("""
                UPDATE operation SET state = 'intervention', attempts = 3, error_class = 'no_verified_copy',
                       last_error = 'no verified copy left to repair from' WHERE id = \(stuck.id)
                """)
            try await StatusServerUnderTest.with(conninfo: sites.fixture.database.conninfo) { server in
                // /metrics through prometheus_client's parser.
                let exposition = try await server.get("metrics")
                #expect(exposition.status == 0, "\(exposition.stderr)")
                let samples = try PrometheusSample.parse(exposition.stdout)
                func value(_ name: String, _ labels: [String: String] = [:]) -> Double? { samples.value(name, labels) }
                #expect(value("ccat_database_up") == 1)
                let files: Int = try #require(try await db.connection.query("SELECT count(*)::int AS n FROM raw_data_file").first)["n"]
                #expect(value("ccat_files") == Double(files))
                let packageCopies: Int = try #require(try await db.connection.query("""
                    SELECT count(*)::int AS n FROM physical_copy WHERE data_location_id = \(sites.disk.id) AND kind = 'RAW_DATA_PACKAGE' AND status = 'PRESENT'
                    """).first)["n"]
                #expect(packageCopies == 1)
                #expect(value("ccat_copies_present", ["location": "cologne:lta", "kind": "RAW_DATA_PACKAGE"]) == Double(packageCopies))
                let archived: Int64 = try #require(try await db.connection.query("""
                    SELECT coalesce(sum(bytes), 0)::bigint AS b FROM transfer_attempt
                    WHERE destination_location_id = \(sites.disk.id) AND succeeded AND operation_type = 'LONG_TERM_ARCHIVE_TRANSFER'
                    """).first)["b"]
                #expect(archived > 0)
                let link = ["destination": "cologne:lta", "work": "LONG_TERM_ARCHIVE_TRANSFER"]
                #expect(value("ccat_link_bytes_24h", link) == Double(archived))
                #expect(value("ccat_link_bytes_total", link) == Double(archived))
                #expect(samples.sum("ccat_operations", ["state": "intervention"]) == 1)
                #expect(value("ccat_raw_data_packages_archived_everywhere") == 1)
                #expect(samples.contains { $0.name == "ccat_fixity_oldest_check_age_seconds" && $0.labels["location"] == "us:lta" })
                // Bounded: labels name locations, queues and states, never a package or a file.
                #expect(samples.count < 300, "\(samples.count) samples")
                #expect(!exposition.stdout.contains(sites.fixture.package.name))
                // Prometheus' naming: counters, and only counters, end in _total.
                let types = exposition.stdout.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ") }
                #expect(types.contains { $0[3] == "counter" })
                for type in types where type.count == 4 {
                    #expect((type[3] == "counter") == type[2].hasSuffix("_total"), "\(type.joined(separator: " "))")
                }

                // /healthz and /api/v1/status.
                let health = try await server.get("healthz")
                #expect(health.stdout.contains("\"database\" : \"reachable\""), "\(health.stdout)")
                let document = try await server.get("api/v1/status")
                let status = try JSONSerialization.jsonObject(with: Data(document.stdout.utf8)) as? [String: Any]
                #expect(status?["files"] as? Int == files)
                #expect((status?["attention"] as? [[String: Any]])?.first?["operation_id"] as? Int == Int(stuck.id))

                // The page in headless Chromium: its DOM, and a screenshot kept as an artefact.
                let page = try await Self.runChromium(chromium, ["--dump-dom", server.url])
                #expect(page.status == 0, "\(page.stderr)")
                let dom = page.stdout
                #expect(dom.contains("data-attention-operation=\"\(stuck.id)\""), "no intervention on the page")
                #expect(dom.contains("ccat ops retry \(stuck.id)"), "no fix command on the page")
                #expect(dom.contains("data-stage=\"raw_data_package\""))
                #expect(dom.range(of: #"data-stage="long_term_archive_transfer".*?data-count="COMPLETED">2<"#, options: .regularExpression) != nil,
                        "the archiving stage does not show its two completed transfers")
                #expect(dom.range(of: #"data-origin="[^"]+" data-destination="cologne:lta" data-work="LONG_TERM_ARCHIVE_TRANSFER">.*?data-bytes="\#(archived)""#,
                                  options: .regularExpression) != nil, "the link into cologne:lta does not show its \(archived) bytes")
                let screenshot = TestEnvironment.artifactDirectory.appendingPathComponent("status-page.png")
                try? FileManager.default.removeItem(at: screenshot)
                let shot = try await Self.runChromium(chromium, ["--window-size=1400,1800", "--screenshot=\(screenshot.path)", server.url])
                #expect(shot.status == 0, "\(shot.stderr)")
                let png = try Data(contentsOf: screenshot)
                #expect(png.count > 10_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "the screenshot is not a PNG of a rendered page")
                try dom.write(to: TestEnvironment.artifactDirectory.appendingPathComponent("status-page.html"), atomically: true, encoding: .utf8)
            }
        }
    }

    /// Headless Chromium with a bound: a browser that hangs fails the test instead of holding CI.
    static func runChromium(_ chromium: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runLongProcess("/usr/bin/timeout", ["300", chromium] + chromiumFlags + arguments, environment: ProcessInfo.processInfo.environment)
    }

    static let chromiumFlags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                                "--no-first-run", "--user-data-dir=\(NSTemporaryDirectory())ccat-chromium-\(getpid())"]
}

/// A `StatusServer` on a port of loopback the kernel picks, for the length of `body`.
struct StatusServerUnderTest {
    let url: String

    func get(_ path: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        // Generous: the answer is what is checked, not how fast a 2-core machine running every
        // other suite gives it.
        try await runLongProcess("/usr/bin/curl", ["-sS", "--fail-with-body", "--max-time", "300", url + path], environment: [:])
    }

    static func with(conninfo: String, _ body: (StatusServerUnderTest) async throws -> Void) async throws {
        let server = StatusServer(address: HTTPAddress(host: "127.0.0.1", port: 0), conninfo: conninfo, leadership: LeadershipBoard(),
                                  live: nil, logger: Logger(label: "test.http"))
        try await server.serving { try await body(StatusServerUnderTest(url: $0.url)) }
    }
}
