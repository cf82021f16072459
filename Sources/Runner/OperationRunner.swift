import Archiving
import Foundation
import Logging
import OpsDB
import Postgres
import Storage

public struct RunnerSettings: Sendable {
    /// How long a claim is valid without renewal; the tracker fails the operation over after that.
    public var leaseSeconds: Double
    /// How often the lease is renewed (well inside `leaseSeconds`).
    public var heartbeatSeconds: Double
    public var retryPolicy: RetryPolicy
    /// Where per-operation logs go.
    public var logDirectory: String
    /// Part size and parallelism of S3 uploads.
    public var s3: S3Settings

    public init(leaseSeconds: Double = 180, heartbeatSeconds: Double = 30, retryPolicy: RetryPolicy = RetryPolicy(), logDirectory: String,
                s3: S3Settings = S3Settings()) {
        self.leaseSeconds = leaseSeconds
        self.heartbeatSeconds = heartbeatSeconds
        self.retryPolicy = retryPolicy
        self.logDirectory = logDirectory
        self.s3 = s3
    }
}

/// What a runner did with its operations.
public struct RunSummary: Sendable, Codable, Equatable {
    public var succeeded: [Int64] = []
    public var failed: [Int64] = []
    public var released: [Int64] = []
    public var leaseLost: [Int64] = []
    /// Operations of the job given back unstarted because the runner was told to stop.
    public var returnedUnstarted = 0
    public var stopReason: String?
}

/// Claims operations, runs them while renewing their lease, and reports each one.
public struct OperationRunner: Sendable {
    public let db: OpsDB
    /// A second connection for lease renewal, so a long database call of the work never delays it.
    public let heartbeatDB: OpsDB
    public let owner: String
    public let settings: RunnerSettings
    public let stop: StopSignal
    public let logger: Logger

    public init(db: OpsDB, heartbeatDB: OpsDB, owner: String, settings: RunnerSettings, stop: StopSignal, logger: Logger) {
        self.db = db
        self.heartbeatDB = heartbeatDB
        self.owner = owner
        self.settings = settings
        self.stop = stop
        self.logger = logger
    }

    /// `ccat-runner run --batch-job ID`: every operation still waiting for this job, one at a time.
    public func runBatchJob(_ batchJobID: Int64) async throws -> RunSummary {
        var summary = RunSummary()
        while stop.stopReason == nil {
            guard let operation = try await db.claimNextOperation(batchJobID: batchJobID, owner: owner, leaseSeconds: settings.leaseSeconds) else { break }
            try await run(operation, into: &summary)
        }
        if let reason = stop.stopReason {
            summary.stopReason = reason
            summary.returnedUnstarted = try await db.releaseUnstarted(batchJobID: batchJobID, reason: "the runner stopped before starting it (\(reason))")
        }
        return summary
    }

    /// `ccat-runner exec --operation ID`: one operation by hand.
    public func runByHand(_ operationID: Int64) async throws -> RunSummary {
        guard let operation = try await db.claimOperationByHand(id: operationID, owner: owner, leaseSeconds: settings.leaseSeconds) else {
            guard let existing = try await db.operation(id: operationID) else { throw InvalidOperation(description: "no operation \(operationID)") }
            throw InvalidOperation(description: "operation \(operationID) is \(existing.state.rawValue)\(existing.batchJobID.map { " in batch job \($0)" } ?? ""); only one that is not submitted or running can be run by hand")
        }
        var summary = RunSummary()
        try await run(operation, into: &summary)
        summary.stopReason = stop.stopReason
        return summary
    }

    func run(_ operation: OperationRecord, into summary: inout RunSummary) async throws {
        let log: OperationLog
        do {
            log = try OperationLog(path: "\(settings.logDirectory)/operation-\(operation.id).log")
        } catch {
            // Without its log the attempt cannot be followed: give it back as a failed attempt.
            try await db.failOperation(operation.id, owner: owner, errorClass: "runner_error", message: "\(error)", logPath: nil,
                                       policy: settings.retryPolicy)
            summary.failed.append(operation.id)
            return
        }
        log.write("operation \(operation.id) \(operation.operationType.rawValue), attempt \(operation.attempts + 1), runner \(owner)")
        let context = ExecutionContext(db: db, log: log, stop: stop, s3: settings.s3)
        let started = ContinuousClock.now
        let lease = LeaseKeeper()
        let heartbeat = Task { [heartbeatDB, owner, settings, stop] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(settings.heartbeatSeconds))
                if Task.isCancelled { break }
                do {
                    if try await !heartbeatDB.renewLease(operationID: operation.id, owner: owner, leaseSeconds: settings.leaseSeconds) {
                        lease.lost = true
                        stop.request("lease of operation \(operation.id) lost")
                        break
                    }
                } catch {
                    // A database hiccup: the lease is still valid for a while; try again next beat.
                    logger.warning("lease renewal failed", metadata: ["operation": "\(operation.id)", "error": "\(error)"])
                }
            }
        }
        defer { heartbeat.cancel() }
        do {
            try await db.markTargetStarted(operation)
            let outcome: ExecutionOutcome
            do {
                outcome = try await execute(operation, context: context)
            } catch is StopRequestedDuringCopy {
                throw StopRequested(reason: stop.stopReason ?? "stop requested")
            }
            heartbeat.cancel()
            // The work is done; a database that is briefly away (a restart, a failover) must not
            // cost it. Recording is retried until the lease would have run out; after that the
            // operation is someone else's, and its rerun finds the result in place.
            let elapsed = Self.seconds(since: started)
            try await whileDatabaseReturns(log: log, for: settings.leaseSeconds) {
                try await db.transaction { db in
                    try await outcome.record(db)
                    try await db.completeOperation(operation.id, owner: owner, report: outcome.report)
                    try await db.recordTransferAttempt(operation, succeeded: true, bytes: outcome.report.bytesProcessed, seconds: elapsed,
                                                       errorClass: nil, logPath: log.path)
                }
            }
            let seconds = (ContinuousClock.now - started).components.seconds
            log.write("succeeded: \(outcome.report.bytesProcessed) bytes in \(seconds) s")
            logger.info("operation succeeded", metadata: ["operation": "\(operation.id)", "bytes": "\(outcome.report.bytesProcessed)"])
            summary.succeeded.append(operation.id)
        } catch let error as LeaseLostError {
            log.write("\(error)")
            summary.leaseLost.append(operation.id)
        } catch let error as any SettledFailure where !lease.lost {
            try await error.settle(operation, owner: owner, db: db, log: log, logger: logger)
            summary.failed.append(operation.id)
        } catch let error as PostgresError where error.isTransient && !lease.lost {
            // The database went away while working (not the work's fault): give the operation
            // back without counting an attempt once it answers again.
            log.write("the database was unavailable (\(error)); the operation goes back to the queue")
            try await whileDatabaseReturns(log: log, for: settings.leaseSeconds) {
                try await db.releaseOperation(operation.id, owner: owner, reason: "the database was unavailable: \(error)", logPath: log.path)
            }
            summary.released.append(operation.id)
        } catch let error as StopRequested where !lease.lost {
            log.write("abandoned: \(error.reason); nothing recorded, the operation goes back to the queue")
            try await db.releaseOperation(operation.id, owner: owner, reason: "the runner stopped during the operation (\(error.reason))",
                                         logPath: log.path)
            summary.released.append(operation.id)
        } catch {
            if lease.lost {
                log.write("lease lost while working; result discarded: \(error)")
                summary.leaseLost.append(operation.id)
                return
            }
            let errorClass = Self.errorClass(error)
            log.write("failed (\(errorClass)): \(error)")
            var state: OperationState?
            try await whileDatabaseReturns(log: log, for: settings.leaseSeconds) {
                try await db.markTargetFailed(operation, message: "\(error)")
                state = try await db.failOperation(operation.id, owner: owner, errorClass: errorClass, message: "\(error)",
                                                   logPath: log.path, policy: settings.retryPolicy,
                                                   countsAsAttempt: errorClass != Self.noSpace, outageLike: errorClass == Self.unreachable)
                if state != nil {
                    try await db.recordTransferAttempt(operation, succeeded: false, bytes: 0, seconds: Self.seconds(since: started),
                                                       errorClass: errorClass, logPath: log.path)
                }
            }
            logger.error("operation failed", metadata: ["operation": "\(operation.id)", "class": "\(errorClass)", "error": "\(error)",
                                                        "state": "\(state?.rawValue ?? "lease lost")"])
            summary.failed.append(operation.id)
        }
    }

    /// Runs `body` again after transient database failures (lost connection, server restarting),
    /// pausing 1, 2, 4 ... up to 15 s between tries, for at most `seconds` in all.
    func whileDatabaseReturns(log: OperationLog, for seconds: Double, _ body: () async throws -> Void) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var pause = 1.0
        while true {
            do {
                return try await body()
            } catch let error as PostgresError where error.isTransient && ContinuousClock.now + .seconds(pause) < deadline {
                log.write("recording the result failed (\(error)); trying again in \(Int(pause)) s")
                try await Task.sleep(for: .seconds(pause))
                pause = min(pause * 2, 15)
            }
        }
    }

    func execute(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        switch operation.operationType {
        case .rawDataPackageCreation: return try await RawDataPackageCreation.run(operation, context: context)
        case .dataTransferPackageCreation: return try await DataTransferPackageCreation.run(operation, context: context)
        case .dataTransfer: return try await DataTransferExecution.run(operation, context: context)
        case .dataTransferUnpacking: return try await DataTransferUnpacking.run(operation, context: context)
        case .longTermArchiveTransfer: return try await LongTermArchiveTransferExecution.run(operation, context: context)
        case .staging: return try await StagingExecution.run(operation, context: context)
        case .deletion: return try await DeletionExecution.run(operation, context: context)
        case .monitoring: return try await MonitoringExecution.run(operation, context: context)
        case .fixityCheck: return try await FixityCheckExecution.run(operation, context: context)
        case .consistencyAudit: return try await ConsistencyAuditExecution.run(operation, context: context)
        case .archiveRepair: return try await ArchiveRepairExecution.run(operation, context: context)
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// A full file system or used-up quota: not the operation's fault, so it waits for cleanup and
    /// is tried again without using up an attempt.
    static let noSpace = "no_space"
    /// The other host did not answer: outage-like, so within the grace it costs no attempt.
    static let unreachable = "unreachable"

    /// The `error_class` recorded with a failure: what kind of problem, for dashboards and retries.
    static func errorClass(_ error: any Error) -> String {
        switch error {
        case let error as ArchiveError:
            switch error.kind {
            case .io: return "io_error"
            case .format: return "archive_format"
            case .unsafeMember: return "unsafe_archive"
            case .checksumMismatch: return "checksum_mismatch"
            case .notFound: return "not_found"
            case .symbolicLink: return "symbolic_link"
            case .noSpace: return noSpace
            }
        case let error as StorageError:
            switch error.kind {
            case .transport: return "transfer_error"
            case .rejected: return "storage_rejected"
            case .credentials: return "credentials"
            case .notFound: return "not_found"
            case .checksumMismatch: return "checksum_mismatch"
            case .invalidPath: return "invalid_path"
            case .io: return "io_error"
            case .unsupported: return "unsupported"
            case .noSpace: return noSpace
            }
        case is LinkUnreachable: return unreachable
        case is DeletionRefused: return "deletion_refused"
        case is UnsupportedOperation: return "unsupported"
        case is InvalidOperation: return "invalid_operation"
        default: return "runner_error"
        }
    }
}

final class LeaseKeeper: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var lost: Bool {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
