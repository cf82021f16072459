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

extension OperationRecord {
    /// The one record the operation works on, as it was created (`createOperation`).
    public var target: OperationTarget {
        if let id = rawDataPackageID { return .rawDataPackage(id) }
        if let id = dataTransferPackageID { return .dataTransferPackage(id) }
        if let id = dataTransferID { return .dataTransfer(id) }
        if let id = longTermArchiveTransferID { return .longTermArchiveTransfer(id) }
        if let id = stagingJobID { return .stagingJob(id) }
        if let id = physicalCopyID { return .physicalCopy(id) }
        return .none
    }
}

extension OperationTarget: CustomStringConvertible {
    /// As `ccat ops list` shows it: "package 12", "copy 7", or "-".
    public var description: String {
        switch self {
        case .none: "-"
        case .rawDataPackage(let id): "package \(id)"
        case .dataTransferPackage(let id): "bundle \(id)"
        case .dataTransfer(let id): "transfer \(id)"
        case .longTermArchiveTransfer(let id): "archive transfer \(id)"
        case .stagingJob(let id): "staging job \(id)"
        case .physicalCopy(let id): "copy \(id)"
        }
    }
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

/// Why `ccat ops retry` or `ccat ops cancel` cannot act on an operation.
public struct OperationChangeRefused: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension OpsDB {
    /// Operations for `ccat ops list`, newest change first.
    public func operations(states: [OperationState]?, queue: String?, type: OperationType?, limit: Int) async throws -> [OperationRecord] {
        let stateNames = states?.map(\.rawValue)
        return try await all(OperationRecord.self, """
            SELECT \(Self.operationColumns) FROM operation
            WHERE (\(stateNames)::text[] IS NULL OR state::text = ANY(\(stateNames)::text[]))
              AND (\(queue)::text IS NULL OR queue = \(queue))
              AND (\(type?.rawValue)::text IS NULL OR operation_type::text = \(type?.rawValue))
            ORDER BY updated_at DESC, id DESC LIMIT \(limit)
            """)
    }

    /// The attempt logs of an operation, oldest first.
    public func operationLogs(_ id: Int64) async throws -> [(path: String, summary: String?, at: Date)] {
        try await connection.query("""
            SELECT log_path, summary, created_at FROM data_transfer_log WHERE operation_id = \(id) ORDER BY created_at, id
            """).map { (try $0["log_path"], try $0["summary"], try $0["created_at"]) }
    }

    /// A human retries: a failed, intervention or cancelled operation becomes pending now, with
    /// its attempts counted from zero again (the last error stays until the next attempt).
    public func retryOperation(_ id: Int64) async throws -> OperationRecord {
        guard let current = try await operation(id: id) else { throw OperationChangeRefused(description: "no operation \(id)") }
        guard [.failed, .intervention, .cancelled].contains(current.state) else {
            throw OperationChangeRefused(description: "operation \(id) is \(current.state.rawValue); only failed, intervention and cancelled operations are retried")
        }
        do {
            guard let updated = try await optional(OperationRecord.self, """
                UPDATE operation SET state = 'pending', attempts = 0, next_attempt_at = now(), batch_job_id = NULL, updated_at = now()
                WHERE id = \(id) AND state IN ('failed', 'intervention', 'cancelled')
                RETURNING \(Self.operationColumns)
                """) else {
                throw OperationChangeRefused(description: "operation \(id) changed meanwhile; look again with 'ccat ops show \(id)'")
            }
            try await notifyWork("operation \(id) retried")
            return updated
        } catch let error as PostgresError where error.sqlState == .uniqueViolation {
            throw OperationChangeRefused(description: "operation \(id) cannot be retried: another live operation already does the same work ('ccat ops list --state active' shows it)")
        }
    }

    /// A human cancels work that no runner holds. Running or submitted operations belong to a
    /// batch job: cancel that job first ('ccat jobs cancel'), which puts them back to pending.
    public func cancelOperation(_ id: Int64, reason: String) async throws -> OperationRecord {
        guard let current = try await operation(id: id) else { throw OperationChangeRefused(description: "no operation \(id)") }
        switch current.state {
        case .submitted, .running:
            throw OperationChangeRefused(description: "operation \(id) is \(current.state.rawValue) in batch job \(current.batchJobID.map(String.init) ?? "?"); cancel the job with 'ccat jobs cancel \(current.batchJobID.map(String.init) ?? "ID")' first")
        case .succeeded, .cancelled:
            throw OperationChangeRefused(description: "operation \(id) is \(current.state.rawValue) already")
        case .pending, .failed, .intervention:
            break
        }
        guard let updated = try await optional(OperationRecord.self, """
            UPDATE operation SET state = 'cancelled', last_error = coalesce(last_error || ' | ', '') || \(reason), finished_at = now(), updated_at = now()
            WHERE id = \(id) AND state IN ('pending', 'failed', 'intervention')
            RETURNING \(Self.operationColumns)
            """) else {
            throw OperationChangeRefused(description: "operation \(id) changed meanwhile; look again with 'ccat ops show \(id)'")
        }
        return updated
    }
}

// MARK: Work without an operation, and the state of what an operation works on

extension OpsDB {
    /// Records of `table` in `statuses` that no live operation of `type` holds: work whose
    /// operation was never created (a crash between the two), was cancelled, or that was sent
    /// back (a bundle that arrived damaged goes back to PENDING after its transfer succeeded).
    /// Rows of `table` in `status` (and, with `unpackPending`, not yet unpacked) without a live
    /// operation of `type`. The status is compared as the enum it is, so the table's partial index
    /// on unfinished rows applies and the cost follows the rows waiting, not the history.
    func orphans(_ table: String, column: String, type: OperationType, status: Status, unpackPending: Bool = false,
                 limit: Int) async throws -> [Int64] {
        let extra: PostgresQuery = unpackPending ? "AND r.unpack_status = 'PENDING'" : ""
        return try await connection.query("""
            SELECT r.id FROM \(identifier: table) r
            WHERE r.status = \(status) \(extra)
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.\(identifier: column) = r.id AND o.operation_type = \(type)
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY r.id LIMIT \(limit)
            """).map { try $0["id"] }
    }

    /// The object the operation works on is now being worked on (one more attempt).
    public func markTargetStarted(_ operation: OperationRecord) async throws {
        guard let record = TargetRecord(operation) else { return }
        let attempts: PostgresQuery = record.attempts.map { "\(identifier: $0) = \(identifier: $0) + 1," } ?? ""
        let started: PostgresQuery = record.startedAt ? "started_at = now()," : ""
        try await connection.execute("""
            UPDATE \(identifier: record.table) SET \(identifier: record.status) = 'IN_PROGRESS', \(attempts) \(started) updated_at = now()
            WHERE id = \(record.id) AND \(record.restartable)
            """)
    }

    /// The attempt failed: the object says so, with the message where it keeps one. Unpacking
    /// failures are kept apart from transfer failures (`unpack_status`, `unpack_error_message`).
    public func markTargetFailed(_ operation: OperationRecord, message: String) async throws {
        guard let record = TargetRecord(operation) else { return }
        let error: PostgresQuery = record.error.map { "\(identifier: $0) = \(message)," } ?? ""
        try await connection.execute("""
            UPDATE \(identifier: record.table) SET \(identifier: record.status) = 'FAILED', \(error) updated_at = now()
            WHERE id = \(record.id) AND \(record.unfinished)
            """)
    }
}

/// Where the object an operation works on records its attempts: its row, status column, attempt
/// counter, start time and error message, and which rows an attempt may still change (a COMPLETED
/// one never goes back). DELETION and MONITORING keep no such record.
struct TargetRecord {
    let table: String
    let id: Int64
    let status: String
    let attempts: String?
    let startedAt: Bool
    let error: String?
    /// Which rows a failure may change.
    let unfinished: PostgresQuery
    /// Which rows a start may change (a package is restarted whatever its status, as before).
    let restartable: PostgresQuery

    init?(_ operation: OperationRecord) {
        switch (operation.operationType, operation.target) {
        case (.rawDataPackageCreation, .rawDataPackage(let id)):
            self.init(table: "raw_data_package", id: id, attempts: nil, startedAt: false, error: nil, restartable: "true")
        case (.dataTransferPackageCreation, .dataTransferPackage(let id)):
            self.init(table: "data_transfer_package", id: id, attempts: nil, startedAt: false, error: nil)
        case (.dataTransfer, .dataTransfer(let id)):
            self.init(table: "data_transfer", id: id)
        case (.dataTransferUnpacking, .dataTransfer(let id)):
            let unfinished: PostgresQuery = "status = 'COMPLETED' AND unpack_status <> 'COMPLETED'"
            self.init(table: "data_transfer", id: id, status: "unpack_status", attempts: "unpack_attempts", startedAt: false,
                      error: "unpack_error_message", unfinished: unfinished, restartable: unfinished)
        case (.longTermArchiveTransfer, .longTermArchiveTransfer(let id)):
            self.init(table: "long_term_archive_transfer", id: id)
        case (.staging, .stagingJob(let id)):
            self.init(table: "staging_job", id: id)
        default:
            return nil
        }
    }

    private init(table: String, id: Int64, status: String = "status", attempts: String? = "attempts", startedAt: Bool = true,
                 error: String? = "error_message", unfinished: PostgresQuery = "status <> 'COMPLETED'",
                 restartable: PostgresQuery? = nil) {
        self.table = table
        self.id = id
        self.status = status
        self.attempts = attempts
        self.startedAt = startedAt
        self.error = error
        self.unfinished = unfinished
        self.restartable = restartable ?? unfinished
    }
}
