import Foundation
import Postgres

/// One SQL migration shipped with the package (`Migrations/NNNN_name.sql`).
public struct Migration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var sql: String
    /// FNV-1a of the file, to notice a shipped migration that was edited after it was applied.
    public var checksum: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        self.checksum = String(hash, radix: 16)
    }
}

/// What `ccat db status` reports for one migration.
public struct MigrationState: Sendable, Codable, Equatable {
    public var version: Int
    public var name: String
    public var appliedAt: Date?
    /// The applied migration's checksum differs from the shipped file.
    public var modifiedSinceApplied: Bool
    /// Applied in the database but not shipped with this build (the database is newer than the binary).
    public var unknownToThisBuild: Bool

    public var isApplied: Bool { appliedAt != nil }
}

public struct MigrationError: Error, CustomStringConvertible {
    public var description: String
}

/// Applies the shipped migrations that a database is missing.
///
/// Safe to run from several processes at once: an advisory lock serializes them, and each
/// migration runs in its own transaction together with its `schema_migrations` row.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    /// Advisory lock key: "ccatmigr" as a bigint.
    static let lockKey: Int64 = 0x6363_6174_6d69_6772

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// The migrations shipped with this build.
    public static func bundled() throws -> Migrator {
        try Migrator(migrations: loadBundledMigrations())
    }

    /// Applies missing migrations; returns the ones it applied (empty when up to date).
    ///
    /// Each migration runs in its own transaction that first takes a transaction-scoped advisory
    /// lock and re-checks `schema_migrations`, so concurrent runs (and retries after a lost
    /// connection) never apply a migration twice.
    @discardableResult
    public func migrate(_ db: PostgresConnection) async throws -> [Migration] {
        try await db.transaction { db in
            try await db.execute("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
            try await db.executeScript("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
        }
        let states = try await status(db)
        if let modified = states.first(where: \.modifiedSinceApplied) {
            throw MigrationError(description: "migration \(modified.version) (\(modified.name)) was changed after it was applied; ship changes as a new migration instead")
        }
        let appliedVersions = Set(states.filter(\.isApplied).map(\.version))
        var applied: [Migration] = []
        for migration in migrations where !appliedVersions.contains(migration.version) {
            do {
                let ran = try await db.transaction { db in
                    try await db.execute("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
                    let done = try await db.query("SELECT 1 FROM schema_migrations WHERE version = \(migration.version)")
                    guard done.isEmpty else { return false }
                    try await db.executeScript(migration.sql)
                    try await db.execute("""
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """)
                    return true
                }
                if ran { applied.append(migration) }
            } catch let error as PostgresError {
                var wrapped = error
                wrapped.message = "migration \(migration.version) (\(migration.name)) failed: \(error.message)"
                throw wrapped
            }
        }
        return applied
    }

    /// Applied and pending migrations. A database without `schema_migrations` has everything pending.
    public func status(_ db: PostgresConnection) async throws -> [MigrationState] {
        let exists = try await db.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        var appliedRows: [Int: (name: String, checksum: String, at: Date)] = [:]
        if try exists.first?.decode(Bool.self, column: "present") == true {
            for row in try await db.query("SELECT version, name, checksum, applied_at FROM schema_migrations") {
                appliedRows[try row["version"]] = (try row["name"], try row["checksum"], try row["applied_at"])
            }
        }
        var states = migrations.map { migration -> MigrationState in
            let applied = appliedRows[migration.version]
            return MigrationState(version: migration.version, name: migration.name, appliedAt: applied?.at,
                                  modifiedSinceApplied: applied.map { $0.checksum != migration.checksum } ?? false,
                                  unknownToThisBuild: false)
        }
        let shipped = Set(migrations.map(\.version))
        for (version, applied) in appliedRows where !shipped.contains(version) {
            states.append(MigrationState(version: version, name: applied.name, appliedAt: applied.at,
                                         modifiedSinceApplied: false, unknownToThisBuild: true))
        }
        return states.sorted { $0.version < $1.version }
    }
}

/// Reads the shipped `Migrations/*.sql`: from `PREFIX/share/ccat/migrations` in an installation
/// (`make install`, the Debian package), else from the OpsDB resource bundle next to the
/// executable (a build tree, or an installation made before the share directory existed).
func loadBundledMigrations() throws -> [Migration] {
    let candidates = [
        Installation.shareDirectory.appendingPathComponent("migrations"),
        Installation.executableDirectory.appendingPathComponent("ccat-data-transfer_OpsDB.resources/Migrations"),
    ]
    guard let directory = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
        throw MigrationError(description: "the schema migrations are missing (looked in \(candidates.map(\.path).joined(separator: " and "))); reinstall ccat ('make install' puts them in PREFIX/share/ccat/migrations)")
    }
    let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "sql" }
    return try files.map { url in
        let stem = url.deletingPathExtension().lastPathComponent
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, let version = Int(parts[0]) else {
            throw MigrationError(description: "migration file \(url.lastPathComponent) is not named NNNN_name.sql")
        }
        return Migration(version: version, name: String(parts[1]), sql: try String(contentsOf: url, encoding: .utf8))
    }
}
