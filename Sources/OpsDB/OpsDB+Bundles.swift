import Foundation
import Postgres

// Data transfer packages (bundles): the packages waiting for one, creation, and their archive.

/// A completed raw data package sitting in a buffer, not yet in a bundle.
public struct UnbundledPackage: Sendable {
    public var packageID: Int64
    public var bufferID: Int64
    public var bytes: Int64
    public var ageSeconds: Double
}

extension OpsDB {
    static let bundleColumns: PostgresQuery = """
        id, name, origin_location_id, status, relative_path, size_bytes, checksum, checksum_algorithm, created_at, updated_at
        """

    /// Completed packages with a verified copy in a buffer, not yet bundled, oldest first.
    public func unbundledPackages(limit: Int) async throws -> [UnbundledPackage] {
        try await connection.query("""
            SELECT p.id, c.data_location_id, p.size_bytes, extract(epoch FROM now() - p.updated_at)::float8 AS age
            FROM raw_data_package p
            JOIN physical_copy c ON c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
            JOIN data_location l ON l.id = c.data_location_id AND l.location_type = 'BUFFER'
            WHERE p.status = 'COMPLETED' AND p.data_transfer_package_id IS NULL
            ORDER BY p.id LIMIT \(limit)
            """).map {
            UnbundledPackage(packageID: try $0["id"], bufferID: try $0["data_location_id"], bytes: try $0["size_bytes"], ageSeconds: try $0["age"])
        }
    }

    public func bundlesWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer_package", column: "data_transfer_package_id", type: .dataTransferPackageCreation, status: .pending, limit: limit)
    }

    public func dataTransferPackage(id: Int64) async throws -> DataTransferPackage? {
        try await optional(DataTransferPackage.self, "SELECT \(Self.bundleColumns) FROM data_transfer_package WHERE id = \(id)")
    }

    /// A new bundle of completed raw data packages kept at `originLocationID` (status PENDING).
    public func createDataTransferPackage(name: String, originLocationID: Int64, relativePath: String, packageIDs: [Int64]) async throws -> DataTransferPackage {
        try await transaction { db in
            let bundle = try await db.one(DataTransferPackage.self, """
                INSERT INTO data_transfer_package (name, origin_location_id, relative_path)
                VALUES (\(name), \(originLocationID), \(relativePath))
                RETURNING \(Self.bundleColumns)
                """)
            try await db.connection.execute("""
                UPDATE raw_data_package SET data_transfer_package_id = \(bundle.id), updated_at = now()
                WHERE id = ANY(\(packageIDs)) AND coalesce(data_transfer_package_id, 0) = 0  -- by primary key, see createRawDataPackage
                """)
            return bundle
        }
    }

    /// The raw data packages of a bundle, in archive order.
    public func rawDataPackages(bundleID: Int64) async throws -> [RawDataPackage] {
        try await all(RawDataPackage.self, """
            SELECT \(Self.rawDataPackageColumns) FROM raw_data_package WHERE data_transfer_package_id = \(bundleID) ORDER BY relative_path
            """)
    }

    public func recordDataTransferPackageArchive(_ id: Int64, sizeBytes: Int64, checksum: String) async throws {
        try await connection.execute("""
            UPDATE data_transfer_package SET size_bytes = \(sizeBytes), checksum = \(checksum), status = 'COMPLETED', updated_at = now()
            WHERE id = \(id)
            """)
    }
}
