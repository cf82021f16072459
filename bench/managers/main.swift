// Manager cost: one cycle of each manager with 1,000,000 raw_data_file rows (and their copies,
// packages and archive copies) of which 10,000 wait to be packaged. Prints each cycle's time
// (goal: under a second) and, from pg_stat_user_tables, the rows the cycle read by sequential
// scans of each large table (goal: none; every scan indexed and bounded). Then the daemon's HTTP
// side on the same catalogue: one /metrics scrape and one status page answer (goal: under a
// second each), and the exposition's size beside its size on the empty catalogue (bounded).
//
//   ccat-bench-managers [--files 1000000] [--pending 10000]
//
// Needs the ops database server (scripts/local-postgres.sh start; make bench does). Creates and
// drops its own database.
import BenchSupport
import CCatConfig
import Foundation
import Logging
import Managers
import Monitor
import OpsDB
import Postgres

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .error
    return handler
}

let fileCount = max(100, Int(argument("--files", default: "1000000")) ?? 1_000_000)
let pendingCount = min(fileCount / 2, max(10, Int(argument("--pending", default: "10000")) ?? 10_000))
let filesPerObservation = 10
try await withBenchDatabase { conninfo in
    let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "ccat-bench-managers"))
    _ = try await Migrator.bundled().migrate(connection)
    let db = OpsDB(connection)
    // CCAT (source + buffer), Cologne and the US (buffer + archive each).
    let ccat = try await db.insertSite(name: "CCAT", shortName: "ccat")
    let cologne = try await db.insertSite(name: "Cologne", shortName: "cologne")
    let us = try await db.insertSite(name: "US", shortName: "us")
    let source = try await db.insertLocation(siteID: ccat.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source"))
    let telescopeBuffer = try await db.insertLocation(siteID: ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
    var archives: [Int64] = []
    for site in [cologne, us] {
        _ = try await db.insertLocation(siteID: site.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/\(site.shortName)/buffer"))
        archives.append(try await db.insertLocation(siteID: site.id, name: "archive", type: .longTermArchive,
                                                    storage: .disk(rootPath: "/data/\(site.shortName)/archive")).id)
    }

    let emptyScrape = try await scrape(conninfo, times: 1)

    // Archived history: packages of 10 files, archived at both sites, temporary copies deleted.
    // Then the pending files: registered, present at the source, not yet packaged.
    let fill = ContinuousClock.now
    let archivedFiles = fileCount - pendingCount
    let observations = (fileCount + filesPerObservation - 1) / filesPerObservation
    let archivedPackages = archivedFiles / filesPerObservation
    try await connection.execute("""
        INSERT INTO executed_obs_unit (obs_id, start_time) SELECT 'obs-' || g, now() - interval '1 day' FROM generate_series(1, \(observations)) g
        """)
    try await connection.execute("""
        INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum, updated_at)
        SELECT 'pkg-' || g, g, \(source.id), 'COMPLETED', 'packages/pkg-' || g || '.tar', 10485760, repeat('a', 64), now() - interval '1 day'
        FROM generate_series(1, \(archivedPackages)) g
        """)
    try await connection.execute("""
        INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id, raw_data_package_id, registered_at)
        SELECT 'f' || g || '.fits', 'obs-' || ((g - 1) / \(filesPerObservation) + 1) || '/f' || g || '.fits', 1048576, repeat('b', 64),
               (g - 1) / \(filesPerObservation) + 1, \(source.id),
               CASE WHEN g <= \(archivedFiles) THEN (g - 1) / \(filesPerObservation) + 1 END, now() - interval '1 day'
        FROM generate_series(1, \(fileCount)) g
        """)
    try await connection.execute("""
        INSERT INTO physical_copy (kind, raw_data_file_id, data_location_id, status, relative_path, size_bytes, checksum, created_at, deleted_at)
        SELECT 'RAW_DATA_FILE', f.id, \(source.id), CASE WHEN f.raw_data_package_id IS NULL THEN 'PRESENT' ELSE 'DELETED' END::physical_copy_status,
               f.relative_path, f.size_bytes, f.checksum, now() - interval '1 day',
               CASE WHEN f.raw_data_package_id IS NULL THEN NULL ELSE now() - interval '1 hour' END
        FROM raw_data_file f
        """)
    try await connection.execute("""
        INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at, created_at, deleted_at)
        SELECT 'RAW_DATA_PACKAGE', p.id, \(telescopeBuffer.id), 'DELETED', p.relative_path, p.size_bytes, p.checksum, now() - interval '1 day',
               now() - interval '1 day', now() - interval '1 hour' FROM raw_data_package p
        """)
    for archive in archives {
        try await connection.execute("""
            INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at, created_at)
            SELECT 'RAW_DATA_PACKAGE', p.id, \(archive), 'PRESENT', p.relative_path, p.size_bytes, p.checksum, now() - interval '2 hours', now() - interval '2 hours'
            FROM raw_data_package p
            """)
    }
    try await connection.execute("ANALYZE")
    let copies: Int = try await connection.query("SELECT count(*)::int AS n FROM physical_copy").first?["n"] ?? 0
    print("\(fileCount) files (\(pendingCount) waiting to be packaged), \(archivedPackages) archived packages, \(copies) physical copies: filled in \(String(format: "%.1f", seconds(since: fill))) s")

    let large = ["raw_data_file", "physical_copy", "raw_data_package", "executed_obs_unit", "operation", "data_transfer", "long_term_archive_transfer"]
    func scans() async throws -> [String: (seq: Int64, rows: Int64)] {
        _ = try await connection.query("SELECT pg_stat_force_next_flush()")
        _ = try await connection.query("SELECT 1")
        var result: [String: (Int64, Int64)] = [:]
        for row in try await connection.query("""
            SELECT relname, coalesce(seq_scan, 0)::bigint AS seq, coalesce(seq_tup_read, 0)::bigint AS rows
            FROM pg_stat_user_tables WHERE relname = ANY(\(large))
            """) {
            result[try row["relname"]] = (try row["seq"], try row["rows"])
        }
        return result
    }

    var settings = ManagerSettings()
    settings.packageSettleSeconds = 0
    let logger = Logger(label: "bench")
    let cycles: [any ManagerCycle] = [
        RawDataPackageManager(settings: settings), DataTransferPackageManager(settings: settings), TransferManager(settings: settings),
        UnpackManager(settings: settings), ArchiveManager(settings: settings), DeletionManager(settings: settings),
        MonitoringManager(settings: settings), IntegrityManager(settings: settings),
        AlertManager(settings: AlertSettings(), site: "bench"),
    ]
    var slowest = 0.0
    var scanned: [String] = []
    for cycle in cycles {
        let before = try await scans()
        let start = ContinuousClock.now
        let changed = try await cycle.cycle(db, logger: logger)
        let time = seconds(since: start)
        let after = try await scans()
        slowest = max(slowest, time)
        // A sequential scan of a small table is fine; one that reads many rows is not.
        let heavy = large.compactMap { table -> String? in
            let rows = (after[table]?.rows ?? 0) - (before[table]?.rows ?? 0)
            return rows > 1000 ? "\(table) \(rows) rows" : nil
        }
        scanned += heavy.map { "\(cycle.name): \($0)" }
        print(String(format: "%-30@ %7.3f s  %5d created  sequentially read: %@", cycle.name as NSString, time, changed,
                     heavy.isEmpty ? "nothing large" : heavy.joined(separator: ", ")))
    }
    print(String(format: "slowest cycle %.3f s (goal < 1 s) %@; large sequential scans: %@", slowest, slowest < 1 ? "met" : "NOT met",
                 scanned.isEmpty ? "none (met)" : scanned.joined(separator: "; ") + " (NOT met)"))
    let full = try await scrape(conninfo, times: 5)
    print(String(format: "/metrics: median %.3f s of 5 (goal < 1 s) %@; %d bytes, %d samples (empty catalogue: %d bytes, %d samples)",
                 full.metricsSeconds, full.metricsSeconds < 1 ? "met" : "NOT met", full.bytes, full.samples, emptyScrape.bytes, emptyScrape.samples))
    print(String(format: "status page: median %.3f s of 5 (goal < 1 s) %@", full.pageSeconds, full.pageSeconds < 1 ? "met" : "NOT met"))
    await connection.close()
}

/// Scrapes /metrics and loads the status page `times` times each from a `StatusServer` on
/// loopback (curl's own timing of each answer); medians, and the exposition's size.
func scrape(_ conninfo: String, times: Int) async throws -> (metricsSeconds: Double, pageSeconds: Double, bytes: Int, samples: Int) {
    let server = StatusServer(address: HTTPAddress(host: "127.0.0.1", port: 0), conninfo: conninfo, leadership: LeadershipBoard(), live: nil,
                              logger: Logger(label: "bench.http"))
    return try await server.serving { address in try measure(address.url, times: times) }
}

func measure(_ url: String, times: Int) throws -> (metricsSeconds: Double, pageSeconds: Double, bytes: Int, samples: Int) {
    func timed(_ path: String) throws -> (seconds: Double, body: String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-bench-scrape-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--fail", "--max-time", "120", "-o", out.path, "-w", "%{time_total}", url + path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let timing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let seconds = Double(timing) else {
            throw BenchError("curl \(url + path) failed (status \(process.terminationStatus))")
        }
        return (seconds, try String(contentsOf: out, encoding: .utf8))
    }
    var metrics: [Double] = [], pages: [Double] = []
    var exposition = ""
    for _ in 0..<times {
        let answer = try timed("metrics")
        metrics.append(answer.seconds)
        exposition = answer.body
        pages.append(try timed("").seconds)
    }
    let samples = exposition.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
    return (median(metrics), median(pages), exposition.utf8.count, samples)
}
