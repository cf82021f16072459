import Foundation
import Postgres

/// The object a physical copy is a copy of.
public enum CopiedObject: Sendable, Equatable {
    case rawDataFile(Int64)
    case rawDataPackage(Int64)
    case dataTransferPackage(Int64)

    var kind: PhysicalCopyKind {
        switch self {
        case .rawDataFile: return .rawDataFile
        case .rawDataPackage: return .rawDataPackage
        case .dataTransferPackage: return .dataTransferPackage
        }
    }

    var ids: (file: Int64?, package: Int64?, bundle: Int64?) {
        switch self {
        case .rawDataFile(let id): return (id, nil, nil)
        case .rawDataPackage(let id): return (nil, id, nil)
        case .dataTransferPackage(let id): return (nil, nil, id)
        }
    }
}

extension OpsDB {
    static let copyColumns: PostgresQuery = """
        id, kind, raw_data_file_id, raw_data_package_id, data_transfer_package_id, data_location_id,
        staging_job_id, status, relative_path, size_bytes, checksum, verified_at, fixity_checked_at, created_at, updated_at,
        deletion_scheduled_at, deleted_at
        """

    /// Records that `object` now exists at `locationID`. Fails with a unique violation when a live
    /// copy is already recorded there.
    /// Records the verified copy an operation made, unless a live copy of `object` is there
    /// already (an earlier attempt recorded it, or the copy was there before).
    public func recordVerifiedCopy(of object: CopiedObject, at locationID: Int64, relativePath: String,
                                   sizeBytes: Int64, checksum: String) async throws {
        guard try await liveCopy(of: object, at: locationID) == nil else { return }
        _ = try await insertPhysicalCopy(of: object, at: locationID, relativePath: relativePath, sizeBytes: sizeBytes,
                                         checksum: checksum, verified: true)
    }

    public func insertPhysicalCopy(of object: CopiedObject, at locationID: Int64, relativePath: String,
                                   sizeBytes: Int64?, checksum: String?, verified: Bool,
                                   stagingJobID: Int64? = nil) async throws -> PhysicalCopy {
        let ids = object.ids
        return try await one(PhysicalCopy.self, """
            INSERT INTO physical_copy (kind, raw_data_file_id, raw_data_package_id, data_transfer_package_id,
                                       data_location_id, staging_job_id, relative_path, size_bytes, checksum, verified_at)
            VALUES (\(object.kind), \(ids.file), \(ids.package), \(ids.bundle), \(locationID), \(stagingJobID),
                    \(relativePath), \(sizeBytes), \(checksum), CASE WHEN \(verified) THEN now() END)
            RETURNING \(Self.copyColumns)
            """)
    }

    public func physicalCopy(id: Int64) async throws -> PhysicalCopy? {
        try await optional(PhysicalCopy.self, "SELECT \(Self.copyColumns) FROM physical_copy WHERE id = \(id)")
    }

    /// Every copy of `object` that exists or existed, oldest first: the audit trail.
    public func physicalCopies(of object: CopiedObject) async throws -> [PhysicalCopy] {
        let ids = object.ids
        return try await all(PhysicalCopy.self, """
            SELECT \(Self.copyColumns) FROM physical_copy
            WHERE raw_data_file_id = \(ids.file) OR raw_data_package_id = \(ids.package) OR data_transfer_package_id = \(ids.bundle)
            ORDER BY created_at, id
            """)
    }

    /// Marks a copy deleted (keeping the row as history). Returns false if it was not live.
    @discardableResult
    public func markPhysicalCopyDeleted(id: Int64) async throws -> Bool {
        try await connection.execute("""
            UPDATE physical_copy SET status = 'DELETED', deleted_at = now()
            WHERE id = \(id) AND status <> 'DELETED'
            """) == 1
    }
}
