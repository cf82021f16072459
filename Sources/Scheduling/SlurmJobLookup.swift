import Foundation
import Processes

/// A Slurm job as `scontrol show job` describes it: whose it is and its burst-buffer directives.
public struct SlurmJobInfo: Sendable, Equatable {
    public var jobID: Int64
    public var userName: String
    public var uid: UInt32
    public var gid: UInt32
    public var state: String
    /// The job's burst-buffer directive lines (`#BB_LUA ...`), as Slurm stored them.
    public var burstBuffer: String?

    /// Whether one of the job's directives is `#BB_LUA ccat stage ...`.
    public var carriesStagingDirective: Bool {
        (burstBuffer ?? "").split(whereSeparator: \.isNewline).contains { line in
            line.split(whereSeparator: \.isWhitespace).prefix(3) == ["#BB_LUA", "ccat", "stage"]
        }
    }
}

/// Asks Slurm itself about jobs and about its own user: what the daemon checks before it stages
/// for a job on behalf of its owner.
public protocol SlurmJobLookup: Sendable {
    /// The job, or nil when Slurm does not know it (any more).
    func job(_ id: Int64) async throws -> SlurmJobInfo?
    /// `SlurmUser` of the cluster: the only identity that may stage for another user's job.
    func slurmUser() async throws -> (name: String, uid: UInt32)
}

/// A Slurm command failed in a way that says nothing about the job (the controller did not answer).
public struct SlurmQueryError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Slurm's commands for staging: `SlurmJobLookup` through `scontrol`, and `SentinelJobs`
/// (SlurmSentinels.swift).
public struct ScontrolJobLookup: SlurmJobLookup {
    let runner: any CommandRunner
    let environment: [String: String]?
    let timeout: Duration

    public init(runner: any CommandRunner = SubprocessRunner(), environment: [String: String]? = nil, timeout: Duration = .seconds(30)) {
        self.runner = runner
        self.environment = environment
        self.timeout = timeout
    }

    public func job(_ id: Int64) async throws -> SlurmJobInfo? {
        let result = try await runner.run("scontrol", ["show", "job", String(id)], environment: environment, timeout: timeout)
        if !result.succeeded {
            if result.stderr.contains("Invalid job id") { return nil }
            throw SlurmQueryError(description: "scontrol show job \(id): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard var info = Self.parseJob(result.stdout) else { return nil }
        // scontrol prints the job's name, which its owner chooses, before UserId= and GroupId=:
        // the owner's ids are taken from squeue's numeric fields instead.
        let ids = try await runner.run("squeue", ["-h", "-j", String(id), "-o", "%i|%U|%G"], environment: environment, timeout: timeout)
        guard ids.succeeded else {
            if ids.stderr.contains("Invalid job id") { return nil }
            throw SlurmQueryError(description: "squeue -j \(id): \(ids.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard let owner = Self.parseOwner(ids.stdout, job: id) else { return nil }
        (info.uid, info.gid) = owner
        return info
    }

    /// `%i|%U|%G` of one job: its numeric uid and gid.
    static func parseOwner(_ text: String, job: Int64) -> (uid: UInt32, gid: UInt32)? {
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            if fields.count == 3, Int64(fields[0]) == job, let uid = UInt32(fields[1]), let gid = UInt32(fields[2]) { return (uid, gid) }
        }
        return nil
    }

    public func slurmUser() async throws -> (name: String, uid: UInt32) {
        let result = try await runner.run("scontrol", ["show", "config"], environment: environment, timeout: timeout)
        guard result.succeeded, let user = Self.parseSlurmUser(result.stdout) else {
            throw SlurmQueryError(description: "scontrol show config names no SlurmUser: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return user
    }

    /// `name(number)` as scontrol prints users and groups.
    static func nameAndNumber(_ text: Substring) -> (String, UInt32)? {
        guard let open = text.firstIndex(of: "("), let close = text[open...].firstIndex(of: ")"),
              let number = UInt32(text[text.index(after: open)..<close]) else { return nil }
        return (String(text[..<open]), number)
    }

    /// The value of `key=` in scontrol's output, up to the next blank.
    static func field(_ key: String, in text: String) -> Substring? {
        guard let range = text.range(of: key + "=", options: []).flatMap({ found -> Range<String.Index>? in
            // Only at the start of a word: "UserId=" must not match inside "ArrayUserId=".
            found.lowerBound == text.startIndex || text[text.index(before: found.lowerBound)].isWhitespace ? found : nil
        }) else { return nil }
        return text[range.upperBound...].prefix { !$0.isWhitespace }
    }

    public static func parseJob(_ text: String) -> SlurmJobInfo? {
        guard let id = field("JobId", in: text).flatMap({ Int64($0) }),
              let user = field("UserId", in: text).flatMap(nameAndNumber), let group = field("GroupId", in: text).flatMap(nameAndNumber),
              let state = field("JobState", in: text) else { return nil }
        // BurstBuffer= starts a line of its own and runs to BurstBufferState= (several directive lines
        // are printed as several lines); text elsewhere, in a comment say, does not count.
        var directives: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("BurstBufferState=") { break }
            if trimmed.hasPrefix("BurstBuffer=") {
                directives = [String(trimmed.dropFirst("BurstBuffer=".count))]
            } else if directives != nil {
                directives?.append(String(trimmed))
            }
        }
        let value = directives?.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        let burstBuffer = value.flatMap { $0.isEmpty || $0 == "(null)" ? nil : $0 }
        return SlurmJobInfo(jobID: id, userName: user.0, uid: user.1, gid: group.1, state: String(state), burstBuffer: burstBuffer)
    }

    static func parseSlurmUser(_ text: String) -> (name: String, uid: UInt32)? {
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "SlurmUser", let user = nameAndNumber(Substring(parts[1])) { return (user.0, user.1) }
        }
        return nil
    }
}
