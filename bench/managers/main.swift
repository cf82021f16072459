// Manager cost: what each manager's cycle costs on a large archived catalogue, when it has
// nothing to do (idle) and when a batch of work waits at every stage (busy). The catalogue holds
// `--files` raw_data_file rows (default 1,000,000; `--files 10000000` for the 10M run) archived
// the way the pipeline leaves them: packaged, bundled, sent to Cologne and on to the US, unpacked,
// archived at both sites, temporary copies deleted, every step's operation succeeded. Per cycle it
// prints the time, and from PostgreSQL's statistics the rows the cycle's queries read (heap rows
// of sequential scans plus index entries) and the buffers they touched, which do not depend on
// the machine's speed. Goals: idle under 50 ms, busy (a batch of 200 at every stage) under 1 s.
// Then the daemon's HTTP side on the same catalogue: one /metrics scrape and one status page
// answer (goal: under a second each), and the exposition's size beside the empty catalogue's.
// Last, what the catalogue's tally costs: a recount, and writers' statements with its triggers
// against the same statements without them.
//
//   ccat-bench-managers [--files 1000000] [--batch 200] [--explain]
//
// --explain logs, with auto_explain, the plan (ANALYZE, BUFFERS) of every statement of a cycle
// that takes 5 ms or more into the database server's log. Needs the ops database server
// (scripts/local-postgres.sh start; make bench does). Creates and drops its own database.
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

let fileCount = max(1000, Int(argument("--files", default: "1000000")) ?? 1_000_000)
let batch = max(10, Int(argument("--batch", default: "200")) ?? 200)
let explain = CommandLine.arguments.contains("--explain")
try await withBenchDatabase { conninfo in
    let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "ccat-bench-managers"))
    _ = try await Migrator.bundled().migrate(connection)
    let db = OpsDB(connection)
    let sites = try await CatalogueSites.create(db)

    let emptyScrape = try await scrape(conninfo, times: 1)

    let fill = ContinuousClock.now
    let (packages, bundles) = try await fillArchive(connection, files: fileCount, sites: sites)
    let counts = try await connection.query("""
        SELECT (SELECT count(*) FROM physical_copy)::bigint AS copies, (SELECT count(*) FROM operation)::bigint AS operations,
               pg_database_size(current_database())::bigint AS bytes
        """)[0]
    let copies: Int64 = try counts["copies"], operations: Int64 = try counts["operations"], bytes: Int64 = try counts["bytes"]
    print("\(fileCount) files in \(packages) archived packages and \(bundles) bundles; \(copies) physical copies, \(operations) operations, "
          + "\(bytes / 1_000_000) MB: filled in \(String(format: "%.1f", seconds(since: fill))) s")

    if explain {
        try await connection.execute("LOAD 'auto_explain'")
        try await connection.executeScript("""
            SET auto_explain.log_min_duration = 5; SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on;
            SET auto_explain.log_nested_statements = on
            """)
    }

    var settings = ManagerSettings()
    settings.packageSettleSeconds = 0
    settings.batchSize = batch
    let logger = Logger(label: "bench")
    let cycles: [any ManagerCycle] = [
        RawDataPackageManager(settings: settings), DataTransferPackageManager(settings: settings), TransferManager(settings: settings),
        UnpackManager(settings: settings), ArchiveManager(settings: settings), DeletionManager(settings: settings),
        MonitoringManager(settings: settings), IntegrityManager(settings: settings),
        AlertManager(settings: AlertSettings(), site: "bench"),
    ]
    let reads = ReadCounter(connection)
    func run(_ cycle: any ManagerCycle) async throws -> CycleCost {
        let before = try await reads.read()
        let start = ContinuousClock.now
        let created = try await cycle.cycle(db, logger: logger)
        let time = seconds(since: start)
        let after = try await reads.read()
        return CycleCost(seconds: time, rows: after.rows - before.rows, buffers: after.buffers - before.buffers, created: created)
    }

    // Idle: nothing waits anywhere. The first round warms the caches; the median of three after it
    // is the cost a daemon pays on every pass.
    for cycle in cycles { _ = try await run(cycle) }
    var idle: [String: CycleCost] = [:]
    for cycle in cycles {
        var rounds: [CycleCost] = []
        for _ in 0..<3 { rounds.append(try await run(cycle)) }
        idle[cycle.name] = rounds.sorted { $0.seconds < $1.seconds }[1]
    }

    // Busy: a batch waits at every stage.
    try await seedPendingWork(connection, batch: batch, sites: sites)
    var busy: [String: CycleCost] = [:]
    for cycle in cycles { busy[cycle.name] = try await run(cycle) }

    func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
    print(column("cycle", 31) + column("idle: time     rows  buffers", 30) + "| busy: time     rows  buffers created")
    var slowestIdle = 0.0, slowestBusy = 0.0
    for cycle in cycles {
        let quiet = idle[cycle.name]!, loaded = busy[cycle.name]!
        slowestIdle = max(slowestIdle, quiet.seconds)
        slowestBusy = max(slowestBusy, loaded.seconds)
        print(column(cycle.name, 31) + String(format: "%7.3f s %8lld %8lld | %7.3f s %8lld %8lld %7d",
                                              quiet.seconds, quiet.rows, quiet.buffers, loaded.seconds, loaded.rows, loaded.buffers, loaded.created))
    }
    print(String(format: "slowest idle cycle %.3f s (goal < 0.05 s) %@; slowest busy cycle %.3f s (goal < 1 s) %@",
                 slowestIdle, slowestIdle < 0.05 ? "met" : "NOT met", slowestBusy, slowestBusy < 1 ? "met" : "NOT met"))
    if explain {
        print("plans of the statements over 5 ms: the database server's log (.ccat-dev/postgres/server.log)")
    }
    let full = try await scrape(conninfo, times: 5)
    print(String(format: "/metrics: median %.3f s of 5 (goal < 1 s) %@; %d bytes, %d samples (empty catalogue: %d bytes, %d samples)",
                 full.metricsSeconds, full.metricsSeconds < 1 ? "met" : "NOT met", full.bytes, full.samples, emptyScrape.bytes, emptyScrape.samples))
    print(String(format: "status page: median %.3f s of 5 (goal < 1 s) %@", full.pageSeconds, full.pageSeconds < 1 ? "met" : "NOT met"))

    // What the tally costs: counting it afresh (ccat db recount, and migration 0023 on an existing
    // catalogue), and each writer's statements with its triggers against the same without.
    let recheck = ContinuousClock.now
    try await db.recountCatalogueTally()
    let recheckSeconds = seconds(since: recheck)
    // As migration 0023 finds an existing catalogue: no package's archive sites written yet.
    try await connection.executeScript("""
        SET session_replication_role = replica; UPDATE raw_data_package SET archive_sites = 0; SET session_replication_role = DEFAULT
        """)
    try await connection.execute("VACUUM raw_data_package")
    let first = ContinuousClock.now
    try await db.recountCatalogueTally()
    print(String(format: "ccat db recount: %.1f s; the first time (migration 0023 on an existing catalogue, every archived package's sites written) %.1f s",
                 recheckSeconds, seconds(since: first)))
    for write in TallyWrite.allCases {
        let cost = try await tallyWriteCost(connection, write, statements: 2000)
        print(String(format: "%@: %.3f ms per statement with the tally's triggers, %.3f ms without (ratio %.2f; medians of 3)",
                     write.rawValue, cost.on * 1000, cost.off * 1000, cost.on / cost.off))
    }
    await connection.close()
}

enum TallyWrite: String, CaseIterable {
    /// The costliest change for the triggers: the package's archive sites are counted again.
    case archiveCopyStatus = "an archive copy's status"
    /// What a fixity pass records for every copy it reads: nothing that counts changes.
    case fixityRecorded = "a fixity check recorded"
    /// A file registered, as `ccat files scan` does: the file and its copy at the source.
    case fileRegistered = "a file registered (file and copy)"
}

/// Seconds per statement of `write`, with the triggers on and with them off (session_replication_role
/// = replica), each round one transaction rolled back; on and off take turns for three rounds.
func tallyWriteCost(_ connection: PostgresConnection, _ write: TallyWrite, statements: Int) async throws -> (on: Double, off: Double) {
    let ids: [Int64] = try await connection.query("""
        SELECT c.id FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
        WHERE l.location_type = 'LONG_TERM_ARCHIVE' AND c.status = 'PRESENT' AND c.raw_data_package_id IS NOT NULL
        ORDER BY c.id LIMIT \(statements)
        """).map { try $0["id"] }
    guard let sourceRow = try await connection.query("""
        SELECT (SELECT id FROM data_location WHERE location_type = 'SOURCE' LIMIT 1) AS source, (SELECT min(id) FROM executed_obs_unit) AS observation
        """).first else {
        throw BenchError("the catalogue has no SOURCE location")
    }
    let source: Int64 = try sourceRow["source"], observation: Int64 = try sourceRow["observation"]
    func round(triggers: Bool) async throws -> Double {
        try await connection.execute("BEGIN")
        if !triggers { try await connection.execute("SET LOCAL session_replication_role = replica") }
        let start = ContinuousClock.now
        for (index, id) in ids.enumerated() {
            switch write {
            case .archiveCopyStatus:
                try await connection.execute("UPDATE physical_copy SET status = 'CORRUPTED' WHERE id = \(id)")
            case .fixityRecorded:
                try await connection.execute("UPDATE physical_copy SET fixity_checked_at = now() WHERE id = \(id)")
            case .fileRegistered:
                let path = "tally-cost/\(index).fits"
                try await connection.execute("""
                    WITH file AS (
                        INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, source_location_id, executed_obs_unit_id)
                        VALUES (\("\(index).fits"), \(path), 1048576, \(String(repeating: "d", count: 64)), \(source), \(observation))
                        RETURNING id, relative_path, size_bytes, checksum
                    )
                    INSERT INTO physical_copy (kind, raw_data_file_id, data_location_id, relative_path, size_bytes, checksum)
                    SELECT 'RAW_DATA_FILE', id, \(source), relative_path, size_bytes, checksum FROM file
                    """)
            }
        }
        let time = seconds(since: start) / Double(max(1, ids.count))
        try await connection.execute("ROLLBACK")
        return time
    }
    var on: [Double] = [], off: [Double] = []
    for _ in 0..<3 {
        on.append(try await round(triggers: true))
        off.append(try await round(triggers: false))
    }
    return (median(on), median(off))
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

struct CycleCost {
    var seconds: Double
    var rows: Int64
    var buffers: Int64
    var created: Int
}
