import OpsDB

/// A job the scheduler accepted.
public struct SubmittedJob: Sendable, Equatable {
    public var jobID: String
    public var cluster: String?

    public init(jobID: String, cluster: String?) {
        self.jobID = jobID
        self.cluster = cluster
    }
}

/// `sbatch` (or the local scheduler) refused or failed to take a job.
public struct SubmissionError: Error, Sendable, CustomStringConvertible {
    /// Worth retrying later (controller unreachable, too busy, queue limits), as opposed to a
    /// setting the scheduler rejects (unknown partition or account).
    public var transient: Bool
    /// The command may have reached the scheduler before failing (a timeout): look the submit token
    /// up before submitting again.
    public var ambiguous: Bool
    public var message: String
    public var description: String { message }
}

/// The batch system the managers submit to: Slurm on clusters, the embedded local scheduler on a
/// single machine. Both speak Slurm's state vocabulary.
public protocol BatchScheduler: Sendable {
    var kind: BatchSchedulerKind { get }

    /// Submits a rendered job script (its `#SBATCH` lines carry the settings). `environment` is
    /// added to the job's environment without being written into the script or onto a command
    /// line (the runner's job secret).
    func submit(scriptPath: String, cluster: String?, environment: [String: String]) async throws -> SubmittedJob

    /// The state of every listed job, in one query. A job missing from the answer is unknown in this
    /// cycle, never finished.
    func statuses(of jobs: [SubmittedJob]) async throws -> [String: SchedulerJobStatus]

    /// Finds the job carrying `submitToken` (after an ambiguous submission), or nil if the scheduler
    /// has no such job.
    func lookup(submitToken: String, jobName: String, cluster: String?) async throws -> SchedulerJobStatus?

    func cancel(_ job: SubmittedJob) async throws
}

extension BatchScheduler {
    public func submit(scriptPath: String, cluster: String?) async throws -> SubmittedJob {
        try await submit(scriptPath: scriptPath, cluster: cluster, environment: [:])
    }
}
