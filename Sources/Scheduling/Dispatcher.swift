import Foundation
import Logging
import Metrics
import OpsDB
import Topology

/// Dispatch settings that are not part of a queue's submission profile.
public struct DispatchSettings: Sendable {
    /// Root of the per-job directories (`<queue>/<batch job id>/job.sh`, `job.out`, `job.err`). On a
    /// cluster it must be on a file system the compute nodes see.
    public var jobDirectory: String
    /// `ccat-runner` as the compute nodes reach it.
    public var runnerPath: String
    /// Exported by every job script before the runner starts (e.g. `CCAT_DATABASE_URL`).
    public var environment: [(name: String, value: String)]
    /// SIGUSR2 reaches the runner this long before the time limit.
    public var signalMarginSeconds: Int
    /// Used where the queue's profile leaves them unset.
    public var defaultMaxQueuedJobs: Int
    public var defaultMaxOperationsPerJob: Int
    public var defaultMaxBytesPerJob: Int64
    /// For the walltime bound on packing (see `JobPacking`).
    public var secondsPerOperation: Double
    public var bytesPerSecond: Double
    /// At most one `sbatch` per interval, across all queues of this dispatcher.
    public var minimumSubmitInterval: Duration
    /// Tries per submission for transient errors, with the delay doubling after each.
    public var submitTries: Int
    public var submitRetryDelay: Duration
    /// A submission whose outcome was ambiguous and whose token the scheduler does not know is
    /// submitted again (same token) only after this long.
    public var ambiguousGraceSeconds: Double
    public var retryPolicy: RetryPolicy

    public init(jobDirectory: String, runnerPath: String, environment: [(name: String, value: String)] = [],
                signalMarginSeconds: Int = 120, defaultMaxQueuedJobs: Int = 20, defaultMaxOperationsPerJob: Int = 100,
                defaultMaxBytesPerJob: Int64 = 500 << 30, secondsPerOperation: Double = 2, bytesPerSecond: Double = 100_000_000,
                minimumSubmitInterval: Duration = .milliseconds(100), submitTries: Int = 3,
                submitRetryDelay: Duration = .seconds(1), ambiguousGraceSeconds: Double = 120,
                retryPolicy: RetryPolicy = RetryPolicy()) {
        self.jobDirectory = jobDirectory
        self.runnerPath = runnerPath
        self.environment = environment
        self.signalMarginSeconds = signalMarginSeconds
        self.defaultMaxQueuedJobs = defaultMaxQueuedJobs
        self.defaultMaxOperationsPerJob = defaultMaxOperationsPerJob
        self.defaultMaxBytesPerJob = defaultMaxBytesPerJob
        self.secondsPerOperation = secondsPerOperation
        self.bytesPerSecond = bytesPerSecond
        self.minimumSubmitInterval = minimumSubmitInterval
        self.submitTries = max(1, submitTries)
        self.submitRetryDelay = submitRetryDelay
        self.ambiguousGraceSeconds = ambiguousGraceSeconds
        self.retryPolicy = retryPolicy
    }

    public func packing(for profile: BatchProfile) -> JobPacking {
        JobPacking(maxOperations: profile.maxOperationsPerJob ?? defaultMaxOperationsPerJob,
                   maxBytes: profile.maxBytesPerJob ?? defaultMaxBytesPerJob,
                   walltimeSeconds: profile.timeLimitMinutes.map { $0 * 60 },
                   secondsPerOperation: secondsPerOperation, bytesPerSecond: bytesPerSecond)
    }
}

/// What one dispatch pass did.
public struct DispatchReport: Sendable, Equatable, Codable {
    public var jobsSubmitted = 0
    public var operationsSubmitted = 0
    public var sbatchCalls = 0
    public var reconciled = 0
    public var failedSubmissions = 0

    public init() {}

    public mutating func add(_ other: DispatchReport) {
        jobsSubmitted += other.jobsSubmitted
        operationsSubmitted += other.operationsSubmitted
        sbatchCalls += other.sbatchCalls
        reconciled += other.reconciled
        failedSubmissions += other.failedSubmissions
    }
}

/// Spaces out `sbatch` calls so a burst of work does not flood the controller.
public actor SubmitThrottle {
    let interval: Duration
    var last: ContinuousClock.Instant?

    public init(interval: Duration) { self.interval = interval }

    func wait() async throws {
        let clock = ContinuousClock()
        if let last {
            let next = last.advanced(by: interval)
            if next > clock.now { try await clock.sleep(until: next) }
        }
        last = clock.now
    }
}

/// Turns pending operations into batch jobs: packs them, records the job (with its submit token)
/// before the scheduler hears of it, writes the script to the job's own directory, submits, and
/// reconciles submissions a crash or timeout left open.
public struct Dispatcher: Sendable {
    public let db: OpsDB
    public let scheduler: any BatchScheduler
    public let renderer: JobScriptRenderer
    public let settings: DispatchSettings
    public let throttle: SubmitThrottle
    public let logger: Logger

    public init(db: OpsDB, scheduler: any BatchScheduler, renderer: JobScriptRenderer, settings: DispatchSettings,
                logger: Logger = Logger(label: "ccat.dispatch")) {
        self.db = db
        self.scheduler = scheduler
        self.renderer = renderer
        self.settings = settings
        self.throttle = SubmitThrottle(interval: settings.minimumSubmitInterval)
        self.logger = logger
    }

    /// One pass over one queue: finish open submissions, then submit new jobs while the queue has
    /// room under its `max_queued_jobs`.
    public func dispatch(_ queue: Queue) async throws -> DispatchReport {
        var report = DispatchReport()
        for job in try await db.unfinishedSubmissions(queue: queue.name) {
            try await resume(job, queue: queue, report: &report)
        }
        var room = (queue.profile.maxQueuedJobs ?? settings.defaultMaxQueuedJobs) - (try await db.activeJobCount(queue: queue.name))
        let packing = settings.packing(for: queue.profile)
        while room > 0 {
            guard let (job, count) = try await prepareJob(queue: queue, packing: packing) else { break }
            report.operationsSubmitted += count
            try await submit(job, queue: queue, report: &report)
            room -= 1
        }
        return report
    }

    /// Locks the next due operations, packs a prefix of them into a new PREPARED job, and commits.
    func prepareJob(queue: Queue, packing: JobPacking) async throws -> (BatchJob, Int)? {
        try await db.transaction { db in
            // Transfers: one link per job, and only on a link below its concurrency limit.
            let due = queue.operation == .dataTransfer
                ? try await db.lockDueTransfers(queue: queue.name, limit: packing.maxOperations)
                : try await db.lockDueOperations(queue: queue.name, limit: packing.maxOperations)
            let count = packing.count(sizes: due.map(\.sizeHintBytes))
            guard count > 0 else { return nil }
            let id = try await db.nextBatchJobID()
            let directory = jobDirectory(queue: queue.name, id: id)
            let job = try await db.createBatchJob(
                id: id, scheduler: scheduler.kind, cluster: queue.profile.cluster, queue: queue.name,
                locationID: queue.locationID, operationType: queue.operation, scriptPath: "\(directory)/job.sh",
                stdoutPath: "\(directory)/job.out", stderrPath: "\(directory)/job.err",
                operationIDs: due.prefix(count).map(\.id))
            return (job, count)
        }
    }

    func jobDirectory(queue: String, id: Int64) -> String {
        "\(settings.jobDirectory)/\(queue)/\(id)"
    }

    /// A job left PREPARED (crash before sbatch) is submitted; one left SUBMITTING (crash or
    /// timeout during sbatch) is looked up by its token first and submitted again only when the
    /// scheduler has not heard of it for the grace period.
    func resume(_ job: BatchJob, queue: Queue, report: inout DispatchReport) async throws {
        if job.state == .submitting {
            if try await adoptIfSubmitted(job, queue: queue, after: "an unfinished submission") {
                report.reconciled += 1
                return
            }
            let age = try await db.secondsSinceUpdate(job.id)
            guard age >= settings.ambiguousGraceSeconds else { return }
            logger.warning("submission not found by token after the grace period; submitting again", metadata: ["batch_job": "\(job.id)", "age_s": "\(Int(age))"])
        }
        try await submit(job, queue: queue, report: &report)
    }

    /// Looks the job's submit token up in the scheduler; if the job is there, records it as
    /// submitted. Returns whether it was found.
    func adoptIfSubmitted(_ job: BatchJob, queue: Queue, after what: String) async throws -> Bool {
        guard let found = try await scheduler.lookup(submitToken: job.submitToken.uuidString.lowercased(), jobName: queue.name,
                                                     cluster: job.cluster.isEmpty ? nil : job.cluster) else { return false }
        // A job that already ended is recorded as submitted (PENDING) all the same: the tracker's
        // next poll sees its end and puts back what it did not finish. Recording the end here
        // would skip that, and leave its operations 'submitted' for good.
        try await db.recordSubmitted(job.id, schedulerJobID: found.jobID, cluster: nil,
                                     state: found.state.isTerminal ? .pending : found.state,
                                     reason: "found by submit token after \(what)")
        logger.notice("found a submission by its token", metadata: ["batch_job": "\(job.id)", "scheduler_job": "\(found.jobID)"])
        return true
    }

    func submit(_ job: BatchJob, queue: Queue, report: inout DispatchReport) async throws {
        let cluster = job.cluster.isEmpty ? nil : job.cluster
        do {
            try writeScript(for: job, queue: queue)
        } catch {
            try await giveUp(job, error: "\(error)", transient: false, report: &report)
            return
        }
        // The runner proves it runs this job with a secret that only the job's environment carries.
        let secret = RunnerSecret()
        try await db.markSubmitting(job.id, runnerSecretDigest: secret.digest)
        var delay = settings.submitRetryDelay
        for attempt in 1...settings.submitTries {
            try await throttle.wait()
            report.sbatchCalls += 1
            do {
                let started = ContinuousClock.now
                let submitted: SubmittedJob
                do {
                    submitted = try await scheduler.submit(scriptPath: job.scriptPath, cluster: cluster,
                                                           environment: [RunnerSecret.variable: secret.value])
                    Self.recordSubmission(since: started, scheduler: scheduler.kind, outcome: "submitted")
                } catch {
                    Self.recordSubmission(since: started, scheduler: scheduler.kind, outcome: "failed")
                    throw error
                }
                try await db.recordSubmitted(job.id, schedulerJobID: submitted.jobID, cluster: submitted.cluster)
                report.jobsSubmitted += 1
                logger.info("submitted", metadata: ["batch_job": "\(job.id)", "scheduler_job": "\(submitted.jobID)", "queue": "\(queue.name)"])
                return
            } catch let error as SubmissionError {
                if error.ambiguous {
                    if try await adoptIfSubmitted(job, queue: queue, after: error.message) {
                        report.jobsSubmitted += 1
                        report.reconciled += 1
                        return
                    }
                    // Left SUBMITTING: the next passes look the token up again before anything is resubmitted.
                    logger.warning("submission outcome unknown; will look the token up again", metadata: ["batch_job": "\(job.id)", "error": "\(error.message)"])
                    return
                }
                if error.transient && attempt < settings.submitTries {
                    logger.warning("transient submission error; retrying", metadata: ["batch_job": "\(job.id)", "error": "\(error.message)", "retry_in": "\(delay)"])
                    try await Task.sleep(for: delay)
                    delay *= 2
                    continue
                }
                try await giveUp(job, error: error.message, transient: error.transient, report: &report)
                return
            }
        }
    }

    /// The job could not be submitted: it ends FAILED and its operations go back to pending (a
    /// rejection counts as a failed attempt, an unavailable scheduler does not).
    func giveUp(_ job: BatchJob, error: String, transient: Bool, report: inout DispatchReport) async throws {
        report.failedSubmissions += 1
        logger.error("submission failed", metadata: ["batch_job": "\(job.id)", "queue": "\(job.queue)", "error": "\(error)"])
        try await db.transaction { db in
            try await db.endUnsubmittedJob(job.id, state: .failed, reason: error)
            try await db.releaseOperations(ofJob: job.id, countsAsAttempt: !transient,
                                           errorClass: transient ? "scheduler_unavailable" : "submission_rejected",
                                           reason: "submission failed: \(error)", policy: settings.retryPolicy)
        }
    }

    /// Renders the job's script into its directory (written to a temporary name, then renamed).
    func writeScript(for job: BatchJob, queue: Queue) throws {
        guard let stdout = job.stdoutPath, let stderr = job.stderrPath else {
            throw JobScriptError(description: "batch job \(job.id) has no log paths")
        }
        let directives = try SbatchDirectives.make(
            queue: queue.name, profile: queue.profile, stdoutPath: stdout, stderrPath: stderr,
            submitToken: job.submitToken.uuidString.lowercased(), signalMarginSeconds: settings.signalMarginSeconds)
        let script = try renderer.render(JobScriptContext(
            batchJobID: job.id, queue: queue.name, site: queue.siteShortName, location: queue.locationName,
            operation: queue.operation, scheduler: scheduler.kind, directives: directives, runnerPath: settings.runnerPath, environment: settings.environment))
        let directory = URL(fileURLWithPath: job.scriptPath).deletingLastPathComponent().path
        // Scripts and their logs are the service user's alone (0700): they name paths, hosts and
        // users of the pipeline. The job directory root and each queue's directory are made so too.
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let root = URL(fileURLWithPath: settings.jobDirectory).standardized.path
            let target = URL(fileURLWithPath: directory).standardized.path
            var privateDirectories = [target]
            if target.hasPrefix(root + "/") {
                privateDirectories = [root]
                for component in target.dropFirst(root.count + 1).split(separator: "/") {
                    privateDirectories.append(privateDirectories.last! + "/" + component)
                }
            }
            for path in privateDirectories {
                try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
            }
            try Data(script.utf8).write(to: URL(fileURLWithPath: job.scriptPath), options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: job.scriptPath)
        } catch {
            throw JobScriptError(description: "cannot write job script \(job.scriptPath): \(error.localizedDescription)")
        }
    }
}

extension Dispatcher {
    /// The metric of how long one `sbatch` (or the local scheduler's submission) took, by
    /// scheduler and outcome: a histogram on the daemon's /metrics (swift-metrics; a no-op when
    /// the daemon serves no metrics).
    public static let submissionMetric = "ccat_dispatch_submission_seconds"

    static func recordSubmission(since started: ContinuousClock.Instant, scheduler: BatchSchedulerKind, outcome: String) {
        Metrics.Timer(label: submissionMetric, dimensions: [("scheduler", scheduler.rawValue), ("outcome", outcome)])
            .record(duration: ContinuousClock.now - started)
    }
}
