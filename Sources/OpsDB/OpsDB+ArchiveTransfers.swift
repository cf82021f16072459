import Foundation
import Postgres

// Long-term archive transfers: which packages still need one, and each transfer's record.

/// A verified copy of a raw data package in a buffer whose site has an archive without it.
public struct ArchiveCandidate: Sendable {
    public var packageID: Int64
    public var bufferID: Int64
    public var archiveID: Int64
}

extension OpsDB {
    static let archiveTransferColumns: PostgresQuery = """
        id, raw_data_package_id, origin_location_id, destination_location_id, status, attempts, requires_intervention,
        error_message, started_at, finished_at
        """

    public func longTermArchiveTransfer(id: Int64) async throws -> LongTermArchiveTransfer? {
        try await optional(LongTermArchiveTransfer.self, "SELECT \(Self.archiveTransferColumns) FROM long_term_archive_transfer WHERE id = \(id)")
    }

    public func createLongTermArchiveTransfer(packageID: Int64, originLocationID: Int64, destinationLocationID: Int64) async throws -> LongTermArchiveTransfer {
        try await one(LongTermArchiveTransfer.self, """
            INSERT INTO long_term_archive_transfer (raw_data_package_id, origin_location_id, destination_location_id)
            VALUES (\(packageID), \(originLocationID), \(destinationLocationID))
            RETURNING \(Self.archiveTransferColumns)
            """)
    }

    public func recordArchiveTransferCompleted(_ id: Int64) async throws {
        try await connection.execute("""
            UPDATE long_term_archive_transfer SET status = 'COMPLETED', error_message = NULL, finished_at = now(), updated_at = now()
            WHERE id = \(id)
            """)
    }

    public func archiveTransfersWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("long_term_archive_transfer", column: "long_term_archive_transfer_id", type: .longTermArchiveTransfer,
                          status: .pending, limit: limit)
    }

    /// Verified package copies in buffers at sites whose active archives lack a transfer for them.
    public func packagesToArchive(limit: Int) async throws -> [ArchiveCandidate] {
        let buffers = try await locationIDs(types: [.buffer])
        return try await connection.query("""
            SELECT c.raw_data_package_id AS package, c.data_location_id AS buffer, a.id AS archive
            FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id
            JOIN data_location a ON a.site_id = l.site_id AND a.location_type = 'LONG_TERM_ARCHIVE' AND a.active
            WHERE c.data_location_id = ANY(\(buffers)) AND c.kind = 'RAW_DATA_PACKAGE' AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM long_term_archive_transfer x
                              WHERE x.raw_data_package_id = c.raw_data_package_id AND x.destination_location_id = a.id)
            ORDER BY c.id LIMIT \(limit)
            """).map { ArchiveCandidate(packageID: try $0["package"], bufferID: try $0["buffer"], archiveID: try $0["archive"]) }
    }
}
