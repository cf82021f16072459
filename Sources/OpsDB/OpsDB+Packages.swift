import Foundation
import Postgres

extension OpsDB {
    static let rawDataPackageColumns: PostgresQuery = """
        id, name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum,
        checksum_algorithm, manifest::text AS manifest, data_transfer_package_id, created_at, updated_at
        """

    public func rawDataPackage(id: Int64) async throws -> RawDataPackage? {
        try await optional(RawDataPackage.self, "SELECT \(Self.rawDataPackageColumns) FROM raw_data_package WHERE id = \(id)")
    }

    /// Groups registered files of one observation into a new package (status PENDING): one
    /// statement, so the package and its files change together in one round trip.
    public func createRawDataPackage(name: String, observationID: Int64, sourceLocationID: Int64, relativePath: String,
                                     fileIDs: [Int64]) async throws -> RawDataPackage {
        try await one(RawDataPackage.self, """
            WITH package AS (
                INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, relative_path)
                VALUES (\(name), \(observationID), \(sourceLocationID), \(relativePath))
                RETURNING \(Self.rawDataPackageColumns)
            ), files AS (
                -- Found by primary key. (Not written 'IS NULL', which the planner may answer by
                -- walking the index of every unpackaged file, once for each package; ids are never 0.)
                UPDATE raw_data_file SET raw_data_package_id = (SELECT id FROM package)
                WHERE id = ANY(\(fileIDs)) AND coalesce(raw_data_package_id, 0) = 0
                RETURNING id
            )
            SELECT \(Self.rawDataPackageColumns) FROM package
            """)
    }

    /// The files of a package, in the order they are archived.
    public func rawDataFiles(packageID: Int64) async throws -> [RawDataFile] {
        try await all(RawDataFile.self, "SELECT \(Self.rawDataFileColumns) FROM raw_data_file WHERE raw_data_package_id = \(packageID) ORDER BY relative_path")
    }

    public func setRawDataPackageStatus(_ id: Int64, _ status: Status) async throws {
        try await connection.execute("UPDATE raw_data_package SET status = \(status), updated_at = now() WHERE id = \(id)")
    }

    /// The archive exists and was verified: size, checksum and member manifest (JSON array).
    public func recordRawDataPackageArchive(_ id: Int64, sizeBytes: Int64, checksum: String, manifestJSON: String) async throws {
        try await connection.execute("""
            UPDATE raw_data_package SET size_bytes = \(sizeBytes), checksum = \(checksum), manifest = \(manifestJSON)::jsonb,
                   status = 'COMPLETED', updated_at = now()
            WHERE id = \(id)
            """)
    }

    /// The live copy of `object` at a location, if one is recorded.
    public func liveCopy(of object: CopiedObject, at locationID: Int64) async throws -> PhysicalCopy? {
        let ids = object.ids
        return try await optional(PhysicalCopy.self, """
            SELECT \(Self.copyColumns) FROM physical_copy
            WHERE (raw_data_file_id = \(ids.file) OR raw_data_package_id = \(ids.package) OR data_transfer_package_id = \(ids.bundle))
              AND data_location_id = \(locationID) AND status <> 'DELETED' AND staging_job_id IS NULL
            """)
    }
}

// MARK: Raw data packages waiting for their operation

/// Files of one observation at one SOURCE location, waiting to be packaged.
public struct UnpackagedGroup: Sendable {
    public var sourceLocationID: Int64
    public var observationID: Int64
    public var obsID: String
    public var fileIDs: [Int64]
    public var bytes: Int64
}

extension OpsDB {
    /// Observations with unpackaged files whose newest file is at least `settleSeconds` old.
    public func unpackagedGroups(settleSeconds: Double, limit: Int, excluding: [(observationID: Int64, sourceLocationID: Int64)] = []) async throws -> [UnpackagedGroup] {
        // Grouped and limited over the partial index of unpackaged files first; the observation's
        // name is then looked up by primary key for the few groups returned.
        try await connection.query("""
            SELECT g.source_location_id, g.executed_obs_unit_id, g.files, g.bytes,
                   (SELECT o.obs_id FROM executed_obs_unit o WHERE o.id = g.executed_obs_unit_id) AS obs_id
            FROM (SELECT f.source_location_id, f.executed_obs_unit_id, array_agg(f.id ORDER BY f.id) AS files,
                         sum(f.size_bytes)::bigint AS bytes, min(f.id) AS first
                  FROM raw_data_file f
                  WHERE f.raw_data_package_id IS NULL
                    AND (f.executed_obs_unit_id, f.source_location_id) NOT IN
                        (SELECT unnest(\(excluding.map(\.observationID))::bigint[]), unnest(\(excluding.map(\.sourceLocationID))::bigint[]))
                  GROUP BY f.source_location_id, f.executed_obs_unit_id
                  HAVING max(f.registered_at) <= now() - make_interval(secs => \(settleSeconds))
                  ORDER BY min(f.id)
                  LIMIT \(limit)) g
            ORDER BY g.first
            """).map {
            UnpackagedGroup(sourceLocationID: try $0["source_location_id"], observationID: try $0["executed_obs_unit_id"],
                            obsID: try $0["obs_id"], fileIDs: try $0["files"], bytes: try $0["bytes"])
        }
    }

    /// Pending packages without a live packaging operation, with where they are and their size.
    public func packagesWithoutOperation(limit: Int) async throws -> [(id: Int64, sourceLocationID: Int64, bytes: Int64)] {
        try await connection.query("""
            SELECT r.id, r.source_location_id,
                   (SELECT coalesce(sum(f.size_bytes), 0) FROM raw_data_file f WHERE f.raw_data_package_id = r.id)::bigint AS bytes
            FROM raw_data_package r
            WHERE r.status = 'PENDING'
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.raw_data_package_id = r.id AND o.operation_type = 'RAW_DATA_PACKAGE_CREATION'
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY r.id LIMIT \(limit)
            """).map { (try $0["id"], try $0["source_location_id"], try $0["bytes"]) }
    }
}
