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
                UPDATE raw_data_file SET raw_data_package_id = (SELECT id FROM package)
                WHERE id = ANY(\(fileIDs)) AND raw_data_package_id IS NULL
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
