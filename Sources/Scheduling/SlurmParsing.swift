import Foundation

import OpsDB

/// The output of a Slurm command did not have the expected shape. Carries the full output, so the
/// log shows what the scheduler really said.
public struct SlurmOutputError: Error, Sendable, CustomStringConvertible {
    public var command: String
    public var output: String
    public var problem: String
    public var description: String { "\(command): \(problem); output was: \(output.debugDescription)" }
}

/// One job as `squeue` or `sacct` reports it.
public struct SchedulerJobStatus: Sendable, Equatable {
    public var jobID: String
    public var state: BatchJobState
    /// Slurm's state text as printed (e.g. `CANCELLED by 0`), for the record.
    public var rawState: String
    public var exitCode: Int?
    public var signal: Int?
    public var node: String?
    public var reason: String?
    /// The submit token from `--comment`, when the query included it.
    public var submitToken: String?
}

public enum SlurmParsing {
    /// `sbatch --parsable` prints `jobid` or `jobid;cluster`. Anything else is an error.
    public static func parseSbatch(_ output: String) throws -> (jobID: String, cluster: String?) {
        let trimmed = output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let match = trimmed.wholeMatch(of: /([0-9]+)(?:;([A-Za-z0-9_.-]+))?/) else {
            throw SlurmOutputError(command: "sbatch --parsable", output: output, problem: "expected 'jobid' or 'jobid;cluster'")
        }
        return (String(match.1), match.2.map(String.init))
    }

    /// Slurm job state names, mapped one by one. Unknown names return nil (logged by the caller and
    /// treated as still active, never as success).
    public static func state(_ text: String) -> BatchJobState? {
        // sacct prints e.g. "CANCELLED by 1000"; squeue prints long names with -o %T.
        let word = text.split(separator: " ").first.map(String.init) ?? text
        switch word.uppercased().trimmingCharacters(in: CharacterSet(charactersIn: "+")) {
        case "PENDING", "PD", "CONFIGURING", "CF", "RESV_DEL_HOLD", "REQUEUE_FED": return .pending
        case "RUNNING", "R", "RESIZING", "SIGNALING", "SI": return .running
        case "COMPLETING", "CG", "STAGE_OUT", "SO": return .completing
        case "SUSPENDED", "S", "STOPPED", "ST": return .suspended
        case "REQUEUED", "RQ", "REQUEUE_HOLD", "RH": return .requeued
        case "COMPLETED", "CD": return .completed
        case "FAILED", "F", "SPECIAL_EXIT", "SE": return .failed
        case "CANCELLED", "CA", "REVOKED", "RV": return .cancelled
        case "TIMEOUT", "TO": return .timeout
        case "NODE_FAIL", "NF": return .nodeFail
        case "OUT_OF_MEMORY", "OOM": return .outOfMemory
        case "PREEMPTED", "PR": return .preempted
        case "BOOT_FAIL", "BF": return .bootFail
        case "DEADLINE", "DL": return .deadline
        default: return nil
        }
    }

    /// `squeue -h -o '%i|%T|%N|%r|%k'`: id, state, nodes, reason, comment.
    public static func parseSqueue(_ output: String) throws -> [SchedulerJobStatus] {
        try records(output, command: "squeue").map { fields, state in
            SchedulerJobStatus(jobID: fields[0], state: state, rawState: fields[1], exitCode: nil, signal: nil,
                               node: nonEmpty(fields[2]), reason: nonEmpty(fields[3]).flatMap { $0 == "None" ? nil : $0 },
                               submitToken: token(fields[4]))
        }
    }

    /// `sacct -n -P -X -o JobIDRaw,State,ExitCode,NodeList,Comment`: one line per job allocation.
    public static func parseSacct(_ output: String) throws -> [SchedulerJobStatus] {
        try records(output, command: "sacct").map { fields, state in
            let codes = fields[2].split(separator: ":").map { Int($0) }
            return SchedulerJobStatus(jobID: fields[0], state: state, rawState: fields[1],
                                      exitCode: codes.first ?? nil, signal: codes.count > 1 ? codes[1] : nil,
                                      node: nonEmpty(fields[3]).flatMap { $0 == "None assigned" ? nil : $0 },
                                      reason: fields[1].contains(" by ") ? fields[1] : nil, submitToken: token(fields[4]))
        }
    }

    /// Lines of five '|'-separated fields whose first is the job id and second a known state.
    private static func records(_ output: String, command: String) throws -> [([String], BatchJobState)] {
        try lines(output).map { line in
            let fields = line.split(separator: "|", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, !fields[0].isEmpty else {
                throw SlurmOutputError(command: command, output: output, problem: "expected 5 '|'-separated fields in '\(line)'")
            }
            guard let state = state(fields[1]) else {
                throw SlurmOutputError(command: command, output: output, problem: "unknown job state '\(fields[1])'")
            }
            return (fields, state)
        }
    }

    static let tokenPrefix = "ccat-submit-token="

    static func token(_ comment: String) -> String? {
        comment.hasPrefix(tokenPrefix) ? String(comment.dropFirst(tokenPrefix.count)) : nil
    }

    private static func lines(_ output: String) -> [String] {
        output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private static func nonEmpty(_ text: String) -> String? { text.isEmpty || text == "(null)" ? nil : text }
}

/// What happens to the operations of a job that ended without its runner reporting them.
public struct JobEndDisposition: Sendable, Equatable {
    /// Whether the failure counts against the operations' attempts (infrastructure failures do not).
    public var countsAsAttempt: Bool
    public var errorClass: String
    public var reason: String
}

extension JobEndDisposition {
    /// Each terminal state, mapped explicitly.
    public static func forJob(ending state: BatchJobState, exitCode: Int?, signal: Int?) -> JobEndDisposition? {
        switch state {
        case .completed:
            return .init(countsAsAttempt: true, errorClass: "unreported", reason: "the batch job completed without the runner reporting this operation")
        case .failed:
            return .init(countsAsAttempt: true, errorClass: "job_failed", reason: "the batch job failed (exit code \(exitCode.map(String.init) ?? "?")\(signal.map { $0 > 0 ? ", signal \($0)" : "" } ?? ""))")
        case .cancelled:
            return .init(countsAsAttempt: true, errorClass: "job_cancelled", reason: "the batch job was cancelled")
        case .timeout:
            return .init(countsAsAttempt: true, errorClass: "job_timeout", reason: "the batch job reached its time limit")
        case .outOfMemory:
            return .init(countsAsAttempt: true, errorClass: "job_out_of_memory", reason: "the batch job ran out of memory")
        case .deadline:
            return .init(countsAsAttempt: true, errorClass: "job_deadline", reason: "the batch job missed its deadline")
        case .nodeFail:
            return .init(countsAsAttempt: false, errorClass: "node_fail", reason: "the node running the batch job failed")
        case .preempted:
            return .init(countsAsAttempt: false, errorClass: "preempted", reason: "the batch job was preempted")
        case .bootFail:
            return .init(countsAsAttempt: false, errorClass: "boot_fail", reason: "the batch job's node failed to boot")
        case .lost:
            return .init(countsAsAttempt: true, errorClass: "job_lost", reason: "the scheduler no longer knows the batch job and reported no end state")
        case .prepared, .submitting, .pending, .running, .completing, .suspended, .requeued:
            return nil
        }
    }
}

extension SchedulerJobStatus {
    /// FAILED, yet with exit code 0 and no signal: a record the accounting database has not
    /// finished writing (a failed job has one or the other).
    var isUnsettledFailure: Bool {
        state == .failed && (exitCode ?? 0) == 0 && (signal ?? 0) == 0
    }
}
