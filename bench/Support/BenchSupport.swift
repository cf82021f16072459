// What the benchmarks share: their options, timing, and a database of their own.
import Foundation
import Postgres

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The value after `name` on the command line, else `value`.
public func argument(_ name: String, default value: String) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count { return arguments[index + 1] }
    return value
}

/// Wall-clock seconds since `start`.
public func seconds(since start: ContinuousClock.Instant) -> Double {
    let duration = ContinuousClock.now - start
    return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The repository the benchmark was built from (for its example files and `.ccat-dev/`).
public func repositoryDirectory(file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Runs `body` with the conninfo of a new, empty database on the ops database server
/// (`CCAT_BENCH_DATABASE_URL`, else the one `scripts/local-postgres.sh start` runs), and drops
/// that database afterwards, also when `body` throws; CCAT_BENCH_KEEP=1 keeps it (and prints where)
/// for looking at query plans.
public func withBenchDatabase<T>(_ body: (String) async throws -> T) async throws -> T {
    guard let adminConninfo = ProcessInfo.processInfo.environment["CCAT_BENCH_DATABASE_URL"]
            ?? (try? String(contentsOf: repositoryDirectory().appendingPathComponent(".ccat-dev/postgres/conninfo"), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) else {
        throw BenchError("no database server: run scripts/local-postgres.sh start (make bench does) or set CCAT_BENCH_DATABASE_URL")
    }
    let name = "ccat_bench_\(UUID().uuidString.prefix(8).lowercased())"
    let admin = try await PostgresConnection.connect(PostgresConfiguration(conninfo: adminConninfo, applicationName: "ccat-bench"))
    try await admin.execute("CREATE DATABASE \(identifier: name)")
    let conninfo = adminConninfo.replacingOccurrences(of: #"dbname=\S+"#, with: "dbname=\(name)", options: .regularExpression)
    let result: T
    do {
        result = try await body(conninfo)
    } catch {
        _ = try? await admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        await admin.close()
        throw error
    }
    if ProcessInfo.processInfo.environment["CCAT_BENCH_KEEP"] == "1" {
        print("kept the database: \(conninfo)")
    } else {
        try await admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
    }
    await admin.close()
    return result
}

/// The middle value (the upper one of an even count).
public func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
