import Foundation
import OpsDB
import Processes

/// Sentinel jobs for `ccat stage request --slurm-dependency`: one tiny job per request, submitted
/// held, released when the request's data is ready and cancelled when the request ends otherwise.
/// A scientist's `sbatch --dependency=afterok:<sentinel>` then starts only once the data is there
/// (Slurm allows dependencies on other users' jobs).
public protocol SentinelJobs: Sendable {
    /// Submits the sentinel of `request` (held unless `held` is false); returns its job id.
    func submit(request: Int64, profile: BatchProfile?, held: Bool) async throws -> Int64
    /// Releases the sentinel `job` of `request` (nothing is done to a job of another name).
    func release(_ job: Int64, request: Int64) async throws
    /// Cancels the sentinel `job` of `request` (nothing is done to a job of another name).
    func cancel(_ job: Int64, request: Int64) async throws
}

/// A Slurm command about a sentinel failed.
public struct SentinelError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// Slurm no longer knows the job (it ended, or someone cancelled it).
    public var jobGone: Bool
}

/// `SentinelJobs` with sbatch, scontrol and scancel. The sentinel asks for 1 CPU, 16 MB and one
/// minute, runs `true`, writes no output, and uses the partition, account and QOS of the
/// PROCESSING location's STAGING batch profile.
extension ScontrolJobLookup: SentinelJobs {
    public static func arguments(request: Int64, profile: BatchProfile?, held: Bool) -> [String] {
        var arguments = ["--parsable", "--job-name=\(name(ofSentinelOf: request))", "--ntasks=1", "--cpus-per-task=1", "--mem=16M", "--time=1",
                         "--output=/dev/null", "--error=/dev/null", "--chdir=/", "--export=NONE"]
        if held { arguments.append("--hold") }
        if let partition = profile?.partition { arguments.append("--partition=\(partition)") }
        if let account = profile?.account { arguments.append("--account=\(account)") }
        if let qos = profile?.qos { arguments.append("--qos=\(qos)") }
        return arguments + ["--wrap=true"]
    }

    public func submit(request: Int64, profile: BatchProfile?, held: Bool) async throws -> Int64 {
        let result = try await runner.run("sbatch", Self.arguments(request: request, profile: profile, held: held), environment: environment, timeout: timeout)
        guard result.succeeded, let id = Int64(result.stdout.split(separator: ";").first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") else {
            throw SentinelError(description: "sbatch of the sentinel of staging request \(request): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))",
                                jobGone: false)
        }
        return id
    }

    public func release(_ job: Int64, request: Int64) async throws {
        try await requireSentinel(job, request: request)
        try await slurm("scontrol", ["release", String(job)], job)
    }

    public func cancel(_ job: Int64, request: Int64) async throws {
        try await requireSentinel(job, request: request)
        try await slurm("scancel", [String(job)], job)
    }

    static func name(ofSentinelOf request: Int64) -> String { "ccat-stage-\(request)" }

    /// The job still queued under the sentinel's name: a job id is never acted on once it left the
    /// queue, so that a later job that got the same id (ids start again) is left alone.
    private func requireSentinel(_ job: Int64, request: Int64) async throws {
        let result = try await runner.run("squeue", ["-h", "-j", String(job), "-o", "%j"], environment: environment, timeout: timeout)
        let name = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if result.succeeded && name == Self.name(ofSentinelOf: request) { return }
        if result.succeeded || result.stderr.contains("Invalid job id") {
            throw SentinelError(description: "Slurm job \(job) is no longer the sentinel of staging request \(request)\(name.isEmpty ? " (it left the queue)" : " (it is now '\(name)')")",
                                jobGone: true)
        }
        throw SentinelError(description: "squeue -j \(job): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))", jobGone: false)
    }

    private func slurm(_ command: String, _ arguments: [String], _ job: Int64) async throws {
        let result = try await runner.run(command, arguments, environment: environment, timeout: timeout)
        guard !result.succeeded else { return }
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        let gone = message.contains("Invalid job id") || message.contains("already completed") || message.contains("Job/step already completing")
        throw SentinelError(description: "\(command) \(arguments.joined(separator: " ")): \(message)", jobGone: gone)
    }
}
