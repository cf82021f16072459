import Foundation
import Logging
import OpsDB

/// What one tracking pass did.
public struct TrackReport: Sendable, Equatable, Codable {
    /// Calls to the scheduler's status query (one per pass with active jobs, whatever their number).
    public var statusQueries = 0
    public var jobsTracked = 0
    public var stateChanges = 0
    public var jobsEnded = 0
    public var jobsLost = 0
    public var operationsReleased = 0
    public var expiredLeases = 0
    public var jobsCancelled = 0

    public init() {}
}

/// Follows submitted jobs: one status query per pass for all of them, each end state mapped
/// explicitly, unreported operations of ended jobs put back with backoff (or to intervention), and
/// expired runner leases failed over even while the scheduler still says RUNNING.
public struct JobTracker: Sendable {
    public let db: OpsDB
    public let scheduler: any BatchScheduler
    public let policy: RetryPolicy
    /// A job absent from the scheduler's answers for this long is LOST (never taken as finished).
    public let lostAfterSeconds: Double
    public let logger: Logger

    public init(db: OpsDB, scheduler: any BatchScheduler, policy: RetryPolicy = RetryPolicy(), lostAfterSeconds: Double = 600,
                logger: Logger = Logger(label: "ccat.tracker")) {
        self.db = db
        self.scheduler = scheduler
        self.policy = policy
        self.lostAfterSeconds = lostAfterSeconds
        self.logger = logger
    }

    public func poll() async throws -> TrackReport {
        var report = TrackReport()
        let jobs = try await db.trackedJobs(scheduler: scheduler.kind)
        report.jobsTracked = jobs.count
        if !jobs.isEmpty {
            let submitted = jobs.compactMap { job in job.submitted.map { SubmittedJob(jobID: $0.jobID, cluster: $0.cluster) } }
            report.statusQueries += 1
            let statuses = try await scheduler.statuses(of: submitted)
            try await db.markSeen(jobs.filter { statuses[$0.schedulerJobID ?? ""] != nil }.map(\.id))
            var missing: [BatchJob] = []
            for job in jobs {
                guard let status = statuses[job.schedulerJobID ?? ""] else {
                    missing.append(job)
                    continue
                }
                try await apply(status, to: job, report: &report)
            }
            if !missing.isEmpty {
                let unseen = try await db.secondsSinceSeen(missing.map(\.id))
                for job in missing where (unseen[job.id] ?? 0) >= lostAfterSeconds {
                    let reason = "the scheduler has not reported job \(job.schedulerJobID ?? "?") for \(Int(unseen[job.id] ?? 0)) s"
                    try await end(job, state: .lost, status: nil, reason: reason, report: &report)
                    report.jobsLost += 1
                }
            }
        }
        try await failOverExpiredLeases(report: &report)
        return report
    }

    func apply(_ status: SchedulerJobStatus, to job: BatchJob, report: inout TrackReport) async throws {
        if status.state.isTerminal {
            try await end(job, state: status.state, status: status, reason: status.reason, report: &report)
            return
        }
        guard status.state != job.state || (status.node != nil && status.node != job.node) else { return }
        report.stateChanges += 1
        try await db.recordJobStatus(job.id, state: status.state, previous: job.state, exitCode: nil, signal: nil,
                                     node: status.node, reason: status.reason)
    }

    /// Records the end state and puts back the operations the runner did not finish.
    func end(_ job: BatchJob, state: BatchJobState, status: SchedulerJobStatus?, reason: String?, report: inout TrackReport) async throws {
        guard let disposition = JobEndDisposition.forJob(ending: state, exitCode: status?.exitCode, signal: status?.signal) else { return }
        report.stateChanges += 1
        report.jobsEnded += 1
        let released = try await db.transaction { db in
            try await db.recordJobStatus(job.id, state: state, previous: job.state, exitCode: status?.exitCode, signal: status?.signal,
                                         node: status?.node, reason: reason ?? (state == .completed ? nil : disposition.reason))
            return try await db.releaseOperations(ofJob: job.id, countsAsAttempt: disposition.countsAsAttempt,
                                                  errorClass: disposition.errorClass, reason: disposition.reason, policy: policy)
        }
        report.operationsReleased += released.count
        let level: Logger.Level = state == .completed && released.isEmpty ? .info : .warning
        logger.log(level: level, "batch job ended", metadata: [
            "batch_job": "\(job.id)", "scheduler_job": "\(job.schedulerJobID ?? "-")", "state": "\(state.rawValue)",
            "released": "\(released.count)", "intervention": "\(released.filter { $0.state == .intervention }.count)",
        ])
    }

    /// Operations whose runner stopped renewing its lease go back to retry. A job left with no live
    /// operation is cancelled, so a hung node does not hold the allocation until its time limit.
    func failOverExpiredLeases(report: inout TrackReport) async throws {
        let byHand = try await db.releaseExpiredHandRuns(policy: policy)
        report.expiredLeases += byHand
        report.operationsReleased += byHand
        for jobID in try await db.jobsWithExpiredLeases() {
            let released = try await db.releaseOperations(
                ofJob: jobID, countsAsAttempt: true, errorClass: "lease_expired",
                reason: "the runner stopped renewing its lease (hung process or lost node)", policy: policy, onlyExpiredLeases: true)
            report.expiredLeases += released.count
            report.operationsReleased += released.count
            logger.warning("runner lease expired; operations returned to retry", metadata: ["batch_job": "\(jobID)", "operations": "\(released.map(\.id))"])
            guard let job = try await db.batchJob(id: jobID), !job.state.isTerminal, let submitted = job.submitted,
                  try await db.liveOperationCount(ofJob: jobID) == 0 else { continue }
            do {
                try await scheduler.cancel(SubmittedJob(jobID: submitted.jobID, cluster: submitted.cluster))
                try await db.addBatchJobEvent(jobID, state: job.state, reason: "cancel requested: every operation's lease expired")
                report.jobsCancelled += 1
            } catch {
                logger.error("could not cancel a job whose leases expired", metadata: ["batch_job": "\(jobID)", "error": "\(error)"])
            }
        }
    }
}
