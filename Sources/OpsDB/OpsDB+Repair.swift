import Foundation
import Postgres

/// A lost or corrupted archive copy that needs an ARCHIVE_REPAIR.
public struct DamagedCopy: Codable, Sendable, Equatable {
    public var copyID: Int64
    public var locationID: Int64
    public var sizeBytes: Int64?
}

extension OpsDB {
    /// Archive copies marked CORRUPTED or MISSING at active long-term archives that no live
    /// repair holds.
    public func copiesToRepair(limit: Int) async throws -> [DamagedCopy] {
        try await all(DamagedCopy.self, """
            SELECT c.id AS copy_id, c.data_location_id AS location_id, c.size_bytes FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id
            WHERE c.status IN ('CORRUPTED', 'MISSING') AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active
              AND c.checksum IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.physical_copy_id = c.id AND o.operation_type = 'ARCHIVE_REPAIR'
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY c.id LIMIT \(limit)
            """)
    }

    /// Verified copies of the same object with the same bytes that a repair may read: other
    /// long-term archives first (most recently verified first), then buffers that still hold it.
    public func repairSources(for copy: PhysicalCopy) async throws -> [PhysicalCopy] {
        try await all(PhysicalCopy.self, """
            SELECT \(Self.copyColumns) FROM physical_copy c
            WHERE c.id <> \(copy.id) AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL AND c.staging_job_id IS NULL
              AND c.checksum = \(copy.checksum) AND c.size_bytes = \(copy.sizeBytes)
              AND (c.raw_data_package_id = \(copy.rawDataPackageID) OR c.data_transfer_package_id = \(copy.dataTransferPackageID)
                   OR c.raw_data_file_id = \(copy.rawDataFileID))
              AND EXISTS (SELECT 1 FROM data_location l WHERE l.id = c.data_location_id AND l.active
                          AND l.location_type IN ('LONG_TERM_ARCHIVE', 'BUFFER'))
            ORDER BY (SELECT l.location_type = 'LONG_TERM_ARCHIVE' FROM data_location l WHERE l.id = c.data_location_id) DESC,
                     c.verified_at DESC, c.id
            """)
    }

    /// Records where a damaged copy's object was moved aside (on its open findings), so the path
    /// is known even if the repair stops before it ends.
    public func recordQuarantine(copyID: Int64, path: String) async throws {
        try await connection.execute("""
            UPDATE integrity_finding SET quarantine_path = \(path)
            WHERE physical_copy_id = \(copyID) AND resolved_at IS NULL AND quarantine_path IS NULL
            """)
    }

    /// Objects of a copy still kept aside by its open findings.
    public func quarantinedObjects(copyID: Int64) async throws -> [String] {
        try await connection.query("""
            SELECT DISTINCT quarantine_path FROM integrity_finding
            WHERE physical_copy_id = \(copyID) AND resolved_at IS NULL AND quarantine_path IS NOT NULL
            """).map { try $0["quarantine_path"] }
    }

    /// The repaired copy holds its bytes again, verified now (`fixity_checked_at`; `verified_at`
    /// stays when the copy was first written and verified); its findings are resolved.
    public func recordCopyRepaired(_ copyID: Int64, resolution: String) async throws {
        try await connection.execute("""
            UPDATE physical_copy SET status = 'PRESENT', fixity_checked_at = now(), updated_at = now()
            WHERE id = \(copyID) AND status IN ('CORRUPTED', 'MISSING')
            """)
        try await connection.execute("""
            UPDATE integrity_finding SET resolved_at = now(), resolution = \(resolution)
            WHERE physical_copy_id = \(copyID) AND resolved_at IS NULL
            """)
    }
}
