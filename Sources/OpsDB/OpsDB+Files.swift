import Foundation
import Postgres

/// A file an instrument wrote, as registered by `ccat files register` or `ccat files scan`.
public struct NewRawDataFile: Sendable {
    public var relativePath: String
    public var sizeBytes: Int64
    public var checksum: String
    public var checksumAlgorithm: String
    public var executedObsUnitID: Int64
    public var instrumentModuleID: Int64?
    public var sourceLocationID: Int64

    public init(relativePath: String, sizeBytes: Int64, checksum: String, checksumAlgorithm: String = "sha256",
                executedObsUnitID: Int64, instrumentModuleID: Int64? = nil, sourceLocationID: Int64) {
        self.relativePath = relativePath
        self.sizeBytes = sizeBytes
        self.checksum = checksum
        self.checksumAlgorithm = checksumAlgorithm
        self.executedObsUnitID = executedObsUnitID
        self.instrumentModuleID = instrumentModuleID
        self.sourceLocationID = sourceLocationID
    }

    public var filename: String { relativePath.split(separator: "/").last.map(String.init) ?? relativePath }
}

extension OpsDB {
    static let rawDataFileColumns: PostgresQuery = """
        id, filename, relative_path, size_bytes, checksum, checksum_algorithm, executed_obs_unit_id,
        instrument_module_id, source_location_id, raw_data_package_id, registered_at
        """
    static let observationColumns: PostgresQuery = "id, obs_id, source_name, start_time, end_time, created_at"

    /// The observation with this identifier, created if new (times and source filled in when missing).
    public func upsertObservation(obsID: String, sourceName: String? = nil, startTime: Date? = nil, endTime: Date? = nil) async throws -> ExecutedObsUnit {
        try await one(ExecutedObsUnit.self, """
            INSERT INTO executed_obs_unit (obs_id, source_name, start_time, end_time)
            VALUES (\(obsID), \(sourceName), \(startTime), \(endTime))
            ON CONFLICT (obs_id) DO UPDATE SET
                source_name = coalesce(executed_obs_unit.source_name, excluded.source_name),
                start_time = coalesce(executed_obs_unit.start_time, excluded.start_time),
                end_time = coalesce(executed_obs_unit.end_time, excluded.end_time)
            RETURNING \(Self.observationColumns)
            """)
    }

    public func observation(obsID: String) async throws -> ExecutedObsUnit? {
        try await optional(ExecutedObsUnit.self, "SELECT \(Self.observationColumns) FROM executed_obs_unit WHERE obs_id = \(obsID)")
    }

    public func upsertInstrumentModule(instrument: String, name: String) async throws -> InstrumentModule {
        try await one(InstrumentModule.self, """
            INSERT INTO instrument_module (instrument, name) VALUES (\(instrument), \(name))
            ON CONFLICT (instrument, name) DO UPDATE SET instrument = excluded.instrument
            RETURNING id, instrument, name, description
            """)
    }

    /// Registers a file once, with its copy at the SOURCE location (`verified` when we computed the
    /// checksum from the file ourselves). Registering the same path again returns the existing row
    /// with `created == false`; the caller compares checksums.
    public func registerRawDataFile(_ file: NewRawDataFile, verified: Bool = false) async throws -> (file: RawDataFile, created: Bool) {
        try await transaction { db in
            if let inserted = try await db.optional(RawDataFile.self, """
                INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, checksum_algorithm,
                                           executed_obs_unit_id, instrument_module_id, source_location_id)
                VALUES (\(file.filename), \(file.relativePath), \(file.sizeBytes), \(file.checksum), \(file.checksumAlgorithm),
                        \(file.executedObsUnitID), \(file.instrumentModuleID), \(file.sourceLocationID))
                ON CONFLICT (source_location_id, relative_path) DO NOTHING
                RETURNING \(Self.rawDataFileColumns)
                """) {
                _ = try await db.insertPhysicalCopy(of: .rawDataFile(inserted.id), at: file.sourceLocationID, relativePath: file.relativePath,
                                                    sizeBytes: file.sizeBytes, checksum: file.checksum, verified: verified)
                return (inserted, true)
            }
            let existing = try await db.one(RawDataFile.self, """
                SELECT \(Self.rawDataFileColumns) FROM raw_data_file
                WHERE source_location_id = \(file.sourceLocationID) AND relative_path = \(file.relativePath)
                """)
            return (existing, false)
        }
    }

    /// Files at a SOURCE location not yet in a package, oldest observation first, at most `limit`.
    public func unpackagedFiles(sourceLocationID: Int64, limit: Int) async throws -> [RawDataFile] {
        try await all(RawDataFile.self, """
            SELECT \(Self.rawDataFileColumns) FROM raw_data_file
            WHERE source_location_id = \(sourceLocationID) AND raw_data_package_id IS NULL
            ORDER BY executed_obs_unit_id, id LIMIT \(limit)
            """)
    }
}

/// Why files cannot be unregistered: their data has left the SOURCE, or work on it is running.
public struct UnregisterRefused: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// What `unregisterRawDataFiles` did.
public struct UnregisterOutcome: Codable, Sendable, Equatable {
    /// The paths whose registration was removed.
    public var removed: [String]
    /// Packages that held them, set aside as FAILED (renamed `<name>-withdrawn-<id>`) with their
    /// unfinished operations cancelled; their other files are packaged again.
    public var withdrawnPackages: [String]
}

extension OpsDB {
    /// Removes the registration of files at a SOURCE location that were registered wrongly (a
    /// path that does not exist, a wrong size or checksum). Allowed while nothing of them has
    /// been archived: a package holding one must not be COMPLETED, have a live copy anywhere, or
    /// have an operation a batch job holds. The files on disk are not touched. All or nothing.
    public func unregisterRawDataFiles(sourceLocationID: Int64, paths: [String]) async throws -> UnregisterOutcome {
        try await transaction { db in
            let files = try await db.all(RawDataFile.self, """
                SELECT \(Self.rawDataFileColumns) FROM raw_data_file
                WHERE source_location_id = \(sourceLocationID) AND relative_path = ANY(\(paths)) FOR UPDATE
                """)
            let missing = Set(paths).subtracting(files.map(\.relativePath))
            if !missing.isEmpty {
                throw UnregisterRefused(description: "not registered at this location: \(missing.sorted().map(\.debugDescription).joined(separator: ", ")); nothing was changed")
            }
            var withdrawn: [String] = []
            for packageID in Set(files.compactMap(\.rawDataPackageID)).sorted() {
                guard let package = try await db.optional(RawDataPackage.self, """
                    SELECT \(Self.rawDataPackageColumns) FROM raw_data_package WHERE id = \(packageID) FOR UPDATE
                    """) else { continue }
                let live = try await db.connection.query("""
                    SELECT (SELECT count(*) FROM physical_copy WHERE raw_data_package_id = \(packageID) AND status <> 'DELETED')::int AS copies,
                           (SELECT string_agg(id::text, ', ') FROM operation WHERE raw_data_package_id = \(packageID)
                                AND state IN ('submitted', 'running')) AS held
                    """).first
                let copies: Int = try live?["copies"] ?? 0
                let held: String? = try live?["held"]
                if package.status == .completed || copies > 0 {
                    throw UnregisterRefused(description: "package \(package.name) holding these files is already written (\(package.status.rawValue), \(copies) live cop\(copies == 1 ? "y" : "ies")); its files can no longer be unregistered")
                }
                if let held {
                    throw UnregisterRefused(description: "package \(package.name) is being written by operation \(held); wait for it to end (or cancel its batch job with 'ccat jobs cancel') and try again")
                }
                try await db.connection.execute("""
                    UPDATE operation SET state = 'cancelled', last_error = 'files of its package were unregistered', updated_at = now()
                    WHERE raw_data_package_id = \(packageID) AND state NOT IN ('succeeded', 'cancelled')
                    """)
                try await db.connection.execute("UPDATE raw_data_file SET raw_data_package_id = NULL WHERE raw_data_package_id = \(packageID)")
                let name = "\(package.name)-withdrawn-\(package.id)"
                try await db.connection.execute("UPDATE raw_data_package SET status = 'FAILED', name = \(name), updated_at = now() WHERE id = \(packageID)")
                withdrawn.append(name)
            }
            let ids = files.map(\.id)
            try await db.connection.execute("DELETE FROM physical_copy WHERE raw_data_file_id = ANY(\(ids))")
            try await db.connection.execute("DELETE FROM raw_data_file WHERE id = ANY(\(ids))")
            return UnregisterOutcome(removed: files.map(\.relativePath).sorted(), withdrawnPackages: withdrawn)
        }
    }

    /// The relative paths registered at a SOURCE location, all or those of one observation.
    public func registeredPaths(sourceLocationID: Int64, obsID: String? = nil) async throws -> [String] {
        let observation: PostgresQuery = obsID.map {
            "AND f.executed_obs_unit_id IN (SELECT id FROM executed_obs_unit WHERE obs_id = \($0))"
        } ?? ""
        return try await connection.query("""
            SELECT f.relative_path FROM raw_data_file f WHERE f.source_location_id = \(sourceLocationID) \(observation)
            """).map { try $0["relative_path"] }
    }
}
