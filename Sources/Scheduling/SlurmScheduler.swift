import Foundation
import Logging
import OpsDB
import Processes

/// Slurm through its commands (`sbatch --parsable`, `sacct`, `squeue`, `scancel`), each run with a
/// timeout in its own process group. `-M` is passed when a job names a cluster.
public struct SlurmScheduler: BatchScheduler {
    public var kind: BatchSchedulerKind { .slurm }
    public let runner: any CommandRunner
    /// Environment for the Slurm commands (e.g. `SLURM_CONF`); nil inherits the daemon's.
    public let environment: [String: String]?
    public let timeout: Duration
    /// Whether `sacct` is the source of end states (slurmdbd present). Without accounting, `squeue`
    /// is used, and a job that disappears from it is reported LOST, never COMPLETED.
    public let accounting: Bool
    public let logger: Logger

    public init(runner: any CommandRunner = SubprocessRunner(), environment: [String: String]? = nil,
                timeout: Duration = .seconds(30), accounting: Bool = true, logger: Logger = Logger(label: "ccat.slurm")) {
        self.runner = runner
        self.environment = environment
        self.timeout = timeout
        self.accounting = accounting
        self.logger = logger
    }

    static let fields = "%i|%T|%N|%r|%k"
    static let sacctFormat = "JobIDRaw,State,ExitCode,NodeList,Comment"

    func command(_ name: String, _ arguments: [String]) async throws -> CommandResult {
        try await runner.run(name, arguments, environment: environment, timeout: timeout)
    }

    public func submit(scriptPath: String, cluster: String?, environment extra: [String: String]) async throws -> SubmittedJob {
        var arguments = ["--parsable"]
        if let cluster { arguments += ["-M", cluster] }
        arguments.append(scriptPath)
        let result: CommandResult
        do {
            // sbatch hands its own environment to the job (its default --export=ALL): the extra
            // variables travel that way, never in the script or on sbatch's command line.
            if extra.isEmpty {
                result = try await command("sbatch", arguments)
            } else {
                let submitting = (environment ?? ProcessInfo.processInfo.environment).merging(extra) { $1 }
                result = try await runner.run("sbatch", arguments, environment: submitting, timeout: timeout)
            }
        } catch let error as CommandRunError where error.kind == .timedOut {
            throw SubmissionError(transient: true, ambiguous: true, message: "sbatch did not answer in time; the job may or may not have been queued (\(error))")
        }
        guard result.succeeded else {
            let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            logger.warning("sbatch failed", metadata: ["slurm.stderr": "\(message)", "slurm.status": "\(result.exitStatus)"])
            throw SubmissionError(transient: Self.isTransient(message), ambiguous: false, message: "sbatch \(scriptPath): \(message.isEmpty ? "exit status \(result.exitStatus)" : message)")
        }
        do {
            let parsed = try SlurmParsing.parseSbatch(result.stdout)
            return SubmittedJob(jobID: parsed.jobID, cluster: parsed.cluster ?? cluster)
        } catch {
            logger.error("sbatch output does not parse", metadata: ["slurm.stdout": "\(result.stdout)", "slurm.stderr": "\(result.stderr)"])
            // It exited 0, so something was probably queued: reconcile by token rather than resubmit.
            throw SubmissionError(transient: true, ambiguous: true, message: "\(error)")
        }
    }

    /// Errors that say "not now" rather than "never".
    static func isTransient(_ message: String) -> Bool {
        let lower = message.lowercased()
        return ["socket timed out", "unable to contact slurm controller", "temporarily unavailable", "try again",
                "slurm_persist_conn", "connection refused", "too many", "maxsubmit", "qosmaxsubmitjob", "transient"]
            .contains { lower.contains($0) }
    }

    public func statuses(of jobs: [SubmittedJob]) async throws -> [String: SchedulerJobStatus] {
        guard !jobs.isEmpty else { return [:] }
        let ids = jobs.map(\.jobID).joined(separator: ",")
        let clusters = Set(jobs.compactMap(\.cluster)).sorted()
        var clusterArguments: [String] = []
        if !clusters.isEmpty { clusterArguments = ["-M", clusters.joined(separator: ",")] }
        var statuses: [SchedulerJobStatus]
        if accounting {
            func sacct(_ ids: String) async throws -> [SchedulerJobStatus] {
                let result = try await command("sacct", ["-n", "-P", "-X", "-j", ids, "-o", Self.sacctFormat] + clusterArguments)
                guard result.succeeded else { throw SlurmOutputError(command: "sacct", output: result.stderr, problem: "exit status \(result.exitStatus)") }
                return try SlurmParsing.parseSacct(Self.droppingClusterHeaders(result.stdout))
            }
            statuses = try await sacct(ids)
            // slurmdbd can show a job that ended within a second as FAILED before it has its exit
            // code (seen on a loaded node: FAILED 0:0, then 3:0). FAILED with neither exit code nor
            // signal is such a half-written record: ask again, twice at most, before taking it.
            for delay in [Duration.seconds(2), .seconds(5)] {
                let unsettled = statuses.filter(\.isUnsettledFailure).map(\.jobID)
                guard !unsettled.isEmpty else { break }
                try await Task.sleep(for: delay)
                let again = Dictionary(try await sacct(Set(unsettled).sorted().joined(separator: ",")).map { ($0.jobID, $0) }) { $1 }
                statuses = statuses.map { again[$0.jobID] ?? $0 }
            }
        } else {
            let result = try await command("squeue", ["-h", "--me", "--states=all", "-o", Self.fields] + clusterArguments)
            guard result.succeeded else { throw SlurmOutputError(command: "squeue", output: result.stderr, problem: "exit status \(result.exitStatus)") }
            let wanted = Set(jobs.map(\.jobID))
            statuses = try SlurmParsing.parseSqueue(Self.droppingClusterHeaders(result.stdout)).filter { wanted.contains($0.jobID) }
        }
        // Requeued jobs appear once per run in sacct; the last line is the current one.
        var byID: [String: SchedulerJobStatus] = [:]
        for status in statuses { byID[status.jobID] = status }
        return byID
    }

    public func lookup(submitToken: String, jobName: String, cluster: String?) async throws -> SchedulerJobStatus? {
        let clusterArguments = cluster.map { ["-M", $0] } ?? []
        let queued = try await command("squeue", ["-h", "--me", "--states=all", "--name", jobName, "-o", Self.fields] + clusterArguments)
        guard queued.succeeded else { throw SlurmOutputError(command: "squeue", output: queued.stderr, problem: "exit status \(queued.exitStatus)") }
        if let found = try SlurmParsing.parseSqueue(Self.droppingClusterHeaders(queued.stdout)).last(where: { $0.submitToken == submitToken }) {
            return found
        }
        guard accounting else { return nil }
        let history = try await command("sacct", ["-n", "-P", "-X", "--name", jobName, "-S", "now-7days", "-o", Self.sacctFormat] + clusterArguments)
        guard history.succeeded else { throw SlurmOutputError(command: "sacct", output: history.stderr, problem: "exit status \(history.exitStatus)") }
        return try SlurmParsing.parseSacct(Self.droppingClusterHeaders(history.stdout)).last { $0.submitToken == submitToken }
    }

    public func cancel(_ job: SubmittedJob) async throws {
        var arguments: [String] = []
        if let cluster = job.cluster { arguments += ["-M", cluster] }
        arguments.append(job.jobID)
        let result = try await command("scancel", arguments)
        guard result.succeeded else {
            throw SubmissionError(transient: Self.isTransient(result.stderr), ambiguous: false, message: "scancel \(job.jobID): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// With `-M`, Slurm prints a "CLUSTER: name" line before each cluster's rows.
    static func droppingClusterHeaders(_ output: String) -> String {
        output.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("CLUSTER: ") }.joined(separator: "\n")
    }
}
