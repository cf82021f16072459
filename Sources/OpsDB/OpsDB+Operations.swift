import Foundation
import Postgres

/// The target of a new operation.
public enum OperationTarget: Sendable, Equatable {
    case none
    case rawDataPackage(Int64)
    case dataTransferPackage(Int64)
    case dataTransfer(Int64)
    case longTermArchiveTransfer(Int64)
    case stagingJob(Int64)
    case physicalCopy(Int64)
}

extension OpsDB {
    static let operationColumns: PostgresQuery = """
        id, operation_type, queue, data_location_id, state, priority, raw_data_package_id,
        data_transfer_package_id, data_transfer_id, long_term_archive_transfer_id, staging_job_id,
        physical_copy_id, target_location_id, size_hint_bytes, attempts, max_attempts, next_attempt_at, last_error,
        error_class, batch_job_id, lease_owner, lease_expires_at, bytes_processed, log_path,
        created_at, updated_at, started_at, finished_at
        """

    /// Creates a pending operation, or returns nil when a live one of this type already holds the
    /// target (the unique indexes make that check race-free).
    public func createOperation(_ type: OperationType, queue: String, locationID: Int64, target: OperationTarget,
                                targetLocationID: Int64? = nil, sizeHintBytes: Int64 = 0, priority: Int = 0) async throws -> OperationRecord? {
        var package: Int64?, bundle: Int64?, transfer: Int64?, archive: Int64?, staging: Int64?, copy: Int64?
        switch target {
        case .none: break
        case .rawDataPackage(let id): package = id
        case .dataTransferPackage(let id): bundle = id
        case .dataTransfer(let id): transfer = id
        case .longTermArchiveTransfer(let id): archive = id
        case .stagingJob(let id): staging = id
        case .physicalCopy(let id): copy = id
        }
        return try await optional(OperationRecord.self, """
            INSERT INTO operation (operation_type, queue, data_location_id, raw_data_package_id, data_transfer_package_id,
                                   data_transfer_id, long_term_archive_transfer_id, staging_job_id, physical_copy_id,
                                   target_location_id, size_hint_bytes, priority)
            VALUES (\(type), \(queue), \(locationID), \(package), \(bundle), \(transfer), \(archive), \(staging), \(copy),
                    \(targetLocationID), \(sizeHintBytes), \(priority))
            ON CONFLICT DO NOTHING
            RETURNING \(Self.operationColumns)
            """)
    }

    public func operation(id: Int64) async throws -> OperationRecord? {
        try await optional(OperationRecord.self, "SELECT \(Self.operationColumns) FROM operation WHERE id = \(id)")
    }

    /// Every operation of a queue, oldest first.
    public func operations(queue: String) async throws -> [OperationRecord] {
        try await all(OperationRecord.self, "SELECT \(Self.operationColumns) FROM operation WHERE queue = \(queue) ORDER BY id")
    }
}
