// Archive integrity, through `ccat-runner exec` as the daemon's batch jobs run it:
//
// - fixity: one FIXITY_CHECK re-reading 2 GB of archive copies (200 files) against `sha256sum` of
//   the same files, alternately, each from a cold page cache where this user may drop it (root).
//   Goal: at most 0.6 of sha256sum's time.
// - audit: one CONSISTENCY_AUDIT of a disk archive with 1,000,000 catalogued copies (empty files in
//   1,000 directories), and first of 100,000: its time, and the runner's peak memory, which must
//   not grow with the location (goal: bounded memory). `find | wc -l` of the same tree is the floor.
//
//   ccat-bench-integrity [--total-mb 2048] [--files 200] [--rounds 3] [--audit-copies 1000000] [--dir DIR] [--only fixity,audit]
//
// Needs the ops database server (scripts/local-postgres.sh start; make bench does) and
// ccat-runner beside this executable. Creates and drops its own database and directory.
import BenchSupport
import Foundation
import OpsDB
import Postgres

#if canImport(Glibc)
import Glibc
#endif

let totalMB = Int(argument("--total-mb", default: "2048")) ?? 2048
let fileCount = max(1, Int(argument("--files", default: "200")) ?? 200)
let rounds = max(1, Int(argument("--rounds", default: "3")) ?? 3)
let auditCopies = max(1000, Int(argument("--audit-copies", default: "1000000")) ?? 1_000_000)
let only = Set(argument("--only", default: "fixity,audit").split(separator: ",").map(String.init))
let base = URL(fileURLWithPath: argument("--dir", default: FileManager.default.temporaryDirectory.path))
    .appendingPathComponent("ccat-bench-integrity-\(getpid())")
let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("ccat-runner").path

/// Runs a program (posix_spawn, then wait4 for its own resource usage); returns its wall time, the
/// CPU time (user + system) of it and the children it waited for, and its peak resident memory.
func timed(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdout: URL? = nil) throws
    -> (wall: Double, cpu: Double, maxRSSMB: Double) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, stdout?.path ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let start = ContinuousClock.now
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard spawned == 0 else { throw BenchError("cannot start \(executable): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let wall = seconds(since: start)
    guard status == 0 else { throw BenchError("\(executable) \(arguments.prefix(3).joined(separator: " ")) failed (wait status \(status))") }
    let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    return (wall, cpu, Double(usage.ru_maxrss) / 1024)
}

/// Drops the page cache (as root), so both sides read from disk; false where not allowed.
func dropCaches() -> Bool {
    sync()
    return (try? "3".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)) != nil
}

/// A line on standard output, at once (not held in a buffer when the output is a file).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }


try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: base) }

do {
try await withBenchDatabase { conninfo in
    let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "ccat-bench-integrity"))
    _ = try await Migrator.bundled().migrate(connection)
    let db = OpsDB(connection)
    let environment = ["CCAT_DATABASE_URL": conninfo, "CCAT_STATE_DIRECTORY": base.appendingPathComponent("state").path]
    let site = try await db.insertSite(name: "Cologne", shortName: "cologne")
    let source = try await db.insertLocation(siteID: site.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/nonexistent"))

    /// Catalogues `count` packages (from `first`) as archive copies at `archive`, with the given paths, sizes and checksums.
    func catalogue(archive: Int64, first: Int, count: Int, path: String, size: String, checksum: String) async throws {
        try await connection.execute("""
            INSERT INTO executed_obs_unit (obs_id, start_time) SELECT 'obs-' || \(archive) || '-' || g, now() FROM generate_series(\(first), \(first + count - 1)) g
            """)
        try await connection.execute(PostgresQuery(stringLiteral: """
            WITH p AS (
                INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum)
                SELECT 'pkg-' || \(archive) || '-' || g, o.id, \(source.id), 'COMPLETED', \(path), \(size), \(checksum)
                FROM generate_series(\(first), \(first + count - 1)) g JOIN executed_obs_unit o ON o.obs_id = 'obs-' || \(archive) || '-' || g
                RETURNING id, relative_path, size_bytes, checksum)
            INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, relative_path, size_bytes, checksum, verified_at, created_at)
            SELECT 'RAW_DATA_PACKAGE', id, \(archive), relative_path, size_bytes, checksum, now() - interval '1 day', now() - interval '1 day' FROM p
            """))
        try await connection.execute("ANALYZE")
    }

    func operation(_ type: OperationType, at archive: Int64) async throws -> Int64 {
        try await db.createOperation(type, queue: "bench", locationID: archive, target: .none)!.id
    }

    if only.contains("fixity") {
        let root = base.appendingPathComponent("fixity")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let archive = try await db.insertLocation(siteID: site.id, name: "fixity_archive", type: .longTermArchive, storage: .disk(rootPath: root.path))
        // The whole location in one pass.
        try await db.setIntegrityPolicy(locationID: archive.id, IntegrityPolicy(fixityCycleSeconds: 60))
        let fileBytes = totalMB * 1_048_576 / fileCount
        var block = [UInt8](repeating: 0, count: 1 << 20)
        let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        block = [UInt8](try random.read(upToCount: block.count) ?? Data(block))
        var names: [String] = []
        for index in 0..<fileCount {
            let name = String(format: "pkg-%04d.tar", index)
            let handle = try { () throws -> FileHandle in
                FileManager.default.createFile(atPath: root.appendingPathComponent(name).path, contents: nil)
                return try FileHandle(forWritingTo: root.appendingPathComponent(name))
            }()
            var written = 0
            block[0] = UInt8(truncatingIfNeeded: index)
            block[1] = UInt8(truncatingIfNeeded: index >> 8)
            while written < fileBytes {
                let chunk = min(block.count, fileBytes - written)
                try handle.write(contentsOf: block[0..<chunk])
                written += chunk
            }
            try handle.close()
            names.append(name)
        }
        // The standard's checksums are the catalogue's.
        let sums = base.appendingPathComponent("sums")
        _ = try timed("/usr/bin/sha256sum", names.map { root.appendingPathComponent($0).path }, stdout: sums)
        let lines = try String(contentsOf: sums, encoding: .utf8).split(separator: "\n")
        try await connection.execute("CREATE TEMPORARY TABLE sums (name text, checksum text)")
        for line in lines {
            let checksum = String(line.prefix(64)), name = (String(line.dropFirst(66)) as NSString).lastPathComponent
            try await connection.execute("INSERT INTO pg_temp.sums VALUES (\(name), \(checksum))")
        }
        try await catalogue(archive: archive.id, first: 1, count: fileCount, path: "(SELECT name FROM pg_temp.sums ORDER BY name OFFSET g - 1 LIMIT 1)",
                            size: "\(fileBytes)", checksum: "(SELECT checksum FROM pg_temp.sums ORDER BY name OFFSET g - 1 LIMIT 1)")
        say("fixity: \(fileCount) archive copies, \(totalMB) MB; page cache \(dropCaches() ? "dropped before each timing" : "NOT dropped (not root): both read from memory")")
        var ours: [Double] = [], standard: [Double] = [], ourCPU: [Double] = [], standardCPU: [Double] = []
        for round in 1...rounds {
            try await connection.execute("DELETE FROM integrity_run")
            try await connection.execute("UPDATE physical_copy SET fixity_checked_at = NULL")
            let id = try await operation(.fixityCheck, at: archive.id)
            _ = dropCaches()
            let ran = try timed(runner, ["exec", "--operation", String(id)], environment: environment)
            let run = try require(try await db.integrityRuns(locationID: archive.id, limit: 1).first)
            guard run.checkedCopies == fileCount, run.corruptedCount == 0, run.state == .completed else {
                throw BenchError("fixity pass checked \(run.checkedCopies) copies (\(run.corruptedCount) corrupted, \(run.state.rawValue)); expected \(fileCount) whole")
            }
            _ = dropCaches()
            let sha = try timed("/usr/bin/sha256sum", names.map { root.appendingPathComponent($0).path }, stdout: sums)
            ours.append(ran.wall); ourCPU.append(ran.cpu); standard.append(sha.wall); standardCPU.append(sha.cpu)
            say(String(format: "  round %d: FIXITY_CHECK %.2f s (CPU %.2f s), sha256sum %.2f s (CPU %.2f s), ratio %.2f",
                         round, ran.wall, ran.cpu, sha.wall, sha.cpu, ran.wall / sha.wall))
        }
        let ratio = median(ours) / median(standard)
        say(String(format: "fixity: median FIXITY_CHECK %.2f s (CPU %.2f s) vs sha256sum %.2f s (CPU %.2f s): ratio %.2f (goal 0.6, %@)",
                     median(ours), median(ourCPU), median(standard), median(standardCPU), ratio, ratio <= 0.6 ? "met" : "NOT met"))
        try FileManager.default.removeItem(at: root)
    }

    if only.contains("audit") {
        let root = base.appendingPathComponent("audit")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let archive = try await db.insertLocation(siteID: site.id, name: "audit_archive", type: .longTermArchive, storage: .disk(rootPath: root.path))
        var made = 0
        for target in [auditCopies / 10, auditCopies] {
            let fill = ContinuousClock.now
            for index in made..<target {
                let directory = root.appendingPathComponent(String(format: "d%04d", index / 1000)).path
                if index % 1000 == 0 || index == made { mkdir(directory, 0o755) }
                let fd = open(directory + String(format: "/pkg-%07d.tar", index), O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw BenchError("cannot create files under \(directory): \(String(cString: strerror(errno)))") }
                close(fd)
            }
            try await catalogue(archive: archive.id, first: made + 1, count: target - made,
                                path: "'d' || lpad(((g - 1) / 1000)::text, 4, '0') || '/pkg-' || lpad((g - 1)::text, 7, '0') || '.tar'",
                                size: "0", checksum: "repeat('0', 64)")
            made = target
            _ = dropCaches()
            let find = try timed("/bin/sh", ["-c", "find '\(root.path)' -type f | wc -l >/dev/null"])
            let id = try await operation(.consistencyAudit, at: archive.id)
            _ = dropCaches()
            let ran = try timed(runner, ["exec", "--operation", String(id)], environment: environment)
            let run = try require(try await db.integrityRuns(locationID: archive.id, limit: 1).first)
            guard run.listedObjects == target, run.lostCount == 0, run.darkCount == 0, run.state == .completed else {
                throw BenchError("audit listed \(run.listedObjects) objects, \(run.lostCount) lost, \(run.darkCount) dark (\(run.state.rawValue)); expected \(target) and nothing found")
            }
            say(String(format: "audit of %d catalogued copies (set up in %.0f s): %.1f s (CPU %.1f s), runner peak memory %.0f MB; find | wc -l %.1f s",
                         target, seconds(since: fill), ran.wall, ran.cpu, ran.maxRSSMB, find.wall))
        }
        say("audit: memory is bounded when the peak stays about the same for ten times the copies")
        try FileManager.default.removeItem(at: root)
    }
    await connection.close()
}
} catch {
    say("ccat-bench-integrity: \(error)")
    try? FileManager.default.removeItem(at: base)
    exit(1)
}

func require<T>(_ value: T?) throws -> T {
    guard let value else { throw BenchError("expected a value") }
    return value
}
