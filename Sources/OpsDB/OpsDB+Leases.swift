import Foundation
import Postgres

/// How an operation ended, as the runner reports it.
public struct OperationReport: Sendable {
    public var bytesProcessed: Int64
    /// JSON object with what the operation produced (checksums, paths, counts).
    public var resultJSON: String
    public var logPath: String?

    public init(bytesProcessed: Int64, resultJSON: String, logPath: String?) {
        self.bytesProcessed = bytesProcessed
        self.resultJSON = resultJSON
        self.logPath = logPath
    }
}

extension OpsDB {
    /// Claims the job's next operation still waiting for it (`submitted`), with a lease. Nil when
    /// none is left (or another runner of the same job holds them).
    public func claimNextOperation(batchJobID: Int64, owner: String, leaseSeconds: Double) async throws -> OperationRecord? {
        try await optional(OperationRecord.self, """
            UPDATE operation SET state = 'running', lease_owner = \(owner),
                   lease_expires_at = now() + make_interval(secs => \(leaseSeconds)),
                   started_at = now(), updated_at = now()
            WHERE id = (SELECT id FROM operation WHERE batch_job_id = \(batchJobID) AND state = 'submitted'
                        ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING \(Self.operationColumns)
            """)
    }

    /// Claims one operation by id for `ccat-runner exec`: it must not be running or submitted to a
    /// job (a finished one may be run again by hand).
    public func claimOperationByHand(id: Int64, owner: String, leaseSeconds: Double) async throws -> OperationRecord? {
        try await optional(OperationRecord.self, """
            UPDATE operation SET state = 'running', lease_owner = \(owner), batch_job_id = NULL,
                   lease_expires_at = now() + make_interval(secs => \(leaseSeconds)),
                   started_at = now(), updated_at = now()
            WHERE id = \(id) AND state NOT IN ('running', 'submitted')
            RETURNING \(Self.operationColumns)
            """)
    }

    /// Extends the lease; false when the runner no longer holds the operation (the tracker
    /// failed it over), in which case the runner must stop working on it.
    public func renewLease(operationID: Int64, owner: String, leaseSeconds: Double) async throws -> Bool {
        let rows = try await connection.query("""
            UPDATE operation SET lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
            RETURNING id
            """)
        return !rows.isEmpty
    }

    /// Records success. Call inside the transaction that also records the operation's effects;
    /// throws `LeaseLostError` (rolling everything back) when the lease is no longer ours.
    public func completeOperation(_ operationID: Int64, owner: String, report: OperationReport) async throws {
        let rows = try await connection.query("""
            UPDATE operation SET state = 'succeeded', bytes_processed = \(report.bytesProcessed),
                   result = \(report.resultJSON)::jsonb, log_path = \(report.logPath), finished_at = now(), updated_at = now(),
                   lease_owner = NULL, lease_expires_at = NULL, last_error = NULL, error_class = NULL, unreached_since = NULL
            WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
            RETURNING id
            """)
        guard !rows.isEmpty else { throw LeaseLostError(operationID: operationID) }
        if let log = report.logPath {
            try await addOperationLog(operationID, path: log, summary: "succeeded")
        }
        // The next stage may start now: wake the daemon's managers.
        try await notifyWork("operation \(operationID) succeeded")
    }

    /// Records a failed attempt: pending again after the policy's delay, or intervention at
    /// `max_attempts`. Returns the new state (nil if the lease was lost meanwhile).
    @discardableResult
    public func failOperation(_ operationID: Int64, owner: String, errorClass: String, message: String, logPath: String?,
                              policy: RetryPolicy, countsAsAttempt: Bool = true, outageLike: Bool = false) async throws -> OperationState? {
        let state: OperationState? = try await connection.query("""
            UPDATE operation SET \(policy.requeue(countsAsAttempt: countsAsAttempt, outageLike: outageLike ? "true" : "false",
                                                  errorClass: errorClass, reason: message)),
                   log_path = coalesce(\(logPath), log_path)
            WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
            RETURNING state
            """).first?["state"]
        if let log = logPath, state != nil {
            try await addOperationLog(operationID, path: log, summary: "\(errorClass): \(message)")
        }
        return state
    }

    /// An attempt found work that no retry can do (no good copy of an object is left anywhere):
    /// the operation goes straight to intervention, whatever attempts it has left.
    public func requireIntervention(_ operationID: Int64, owner: String, errorClass: String, message: String, logPath: String?) async throws {
        let ended = try await connection.query("""
            UPDATE operation SET state = 'intervention', attempts = attempts + 1, error_class = \(errorClass), last_error = \(message),
                   log_path = coalesce(\(logPath), log_path), lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
            RETURNING id
            """)
        guard !ended.isEmpty else { throw LeaseLostError(operationID: operationID) }
        if let logPath { try await addOperationLog(operationID, path: logPath, summary: "\(errorClass): \(message)") }
    }

    /// Transfers a bundle may be sent before a damaged arrival needs a human.
    public static let maxTransferAttempts = 3

    /// An unpacking found its bundle damaged at the destination (and removed it): in one
    /// transaction the unpack operation ends (cancelled, error class `bundle_damaged`), the
    /// destination copy is recorded as deleted, and the transfer goes back to PENDING for the
    /// transfer manager to send again, or to FAILED once it was sent `maxTransferAttempts` times
    /// (each start of a transfer counts in `data_transfer.attempts`). Returns
    /// whether it will be sent again.
    @discardableResult
    public func sendTransferBack(operationID: Int64, owner: String, transferID: Int64, message: String, logPath: String?) async throws -> Bool {
        try await transaction { db in
            let ended = try await db.connection.query("""
                UPDATE operation SET state = 'cancelled', error_class = 'bundle_damaged', last_error = \(message),
                       log_path = coalesce(\(logPath), log_path), lease_owner = NULL, lease_expires_at = NULL,
                       attempts = attempts + 1, finished_at = now(), updated_at = now()
                WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
                RETURNING id
                """)
            guard !ended.isEmpty else { throw LeaseLostError(operationID: operationID) }
            if let logPath { try await db.addOperationLog(operationID, path: logPath, summary: "bundle_damaged: \(message)") }
            try await db.connection.execute("""
                UPDATE physical_copy c SET status = 'DELETED', deleted_at = now(), updated_at = now()
                FROM data_transfer t
                WHERE t.id = \(transferID) AND c.data_transfer_package_id = t.data_transfer_package_id
                  AND c.data_location_id = t.destination_location_id AND c.status <> 'DELETED'
                """)
            let again: Bool = try await db.connection.query("""
                UPDATE data_transfer SET error_message = \(message), unpack_status = 'PENDING',
                       unpack_error_message = \(message), bytes_transferred = NULL, finished_at = NULL, updated_at = now(),
                       status = CASE WHEN attempts >= \(Self.maxTransferAttempts) THEN 'FAILED'::status ELSE 'PENDING'::status END
                WHERE id = \(transferID)
                RETURNING status = 'PENDING' AS again
                """).first?["again"] ?? false
            try await db.notifyWork("transfer \(transferID) sent back")
            return again
        }
    }

    /// One attempt's log file, linked to the operation (and its transfer, if it has one).
    func addOperationLog(_ operationID: Int64, path: String, summary: String) async throws {
        try await connection.execute("""
            INSERT INTO data_transfer_log (operation_id, data_transfer_id, log_path, summary)
            SELECT id, data_transfer_id, \(path), \(summary) FROM operation WHERE id = \(operationID)
            """)
    }

    /// Gives an operation back without counting an attempt (the runner was told to stop).
    public func releaseOperation(_ operationID: Int64, owner: String, reason: String, logPath: String? = nil) async throws {
        try await connection.execute("""
            UPDATE operation SET state = 'pending', next_attempt_at = now(), last_error = \(reason), error_class = 'runner_stopped',
                   lease_owner = NULL, lease_expires_at = NULL, log_path = coalesce(\(logPath), log_path), updated_at = now()
            WHERE id = \(operationID) AND lease_owner = \(owner) AND state = 'running'
            """)
    }

    /// Operations of the job the runner never started go back to pending, uncounted.
    @discardableResult
    public func releaseUnstarted(batchJobID: Int64, reason: String) async throws -> Int {
        try await connection.query("""
            UPDATE operation SET state = 'pending', next_attempt_at = now(), last_error = \(reason), updated_at = now()
            WHERE batch_job_id = \(batchJobID) AND state = 'submitted'
            RETURNING id
            """).count
    }

    /// Operations run by hand (no batch job) whose lease expired go back to retry, counted.
    @discardableResult
    public func releaseExpiredHandRuns(policy: RetryPolicy) async throws -> Int {
        try await connection.query("""
            UPDATE operation SET \(policy.requeue(countsAsAttempt: true, errorClass: "lease_expired", reason: "the runner stopped renewing its lease"))
            WHERE state = 'running' AND batch_job_id IS NULL AND lease_expires_at < now()
            RETURNING id
            """).count
    }
}

/// The tracker failed the operation over while the runner worked on it: the runner's result is
/// not recorded (another attempt owns the operation now).
public struct LeaseLostError: Error, Sendable, CustomStringConvertible {
    public var operationID: Int64
    public var description: String { "operation \(operationID): lease lost (the operation was failed over to another attempt); result not recorded" }
}
