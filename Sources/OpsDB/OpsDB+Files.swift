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
