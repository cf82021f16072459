import Foundation
import OpsDB
import Processes
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// rsync (resumable: partial data kept in a hidden directory next to the target) or bbcp, run as
/// a child process whose output goes to the operation log; a stop request terminates it.
struct ExternalCopy {
    var method: TransferMethod
    var source: String
    var target: String
    var log: OperationLog
    var stop: StopSignal
    /// The target is `host:path` on another host, reached with ssh and the runner's ssh options.
    var remote = false
    /// This copy's share of its link's bandwidth cap in force (a window of the topology's
    /// `links:`), for rsync's `--bwlimit`.
    var bandwidthLimitBitsPerSecond: Int64?
    /// Asked every `shareInterval` while rsync runs: the copy's share now (nil: no cap). When a
    /// window opens or closes, or the link's jobs change, rsync is restarted with the new limit;
    /// it keeps what has arrived, so the restart costs a few round trips, not the data.
    var currentShare: (@Sendable () async throws -> Int64?)?
    var shareInterval: Duration = .seconds(60)
    /// Told, every 2 s while rsync runs and once as it ends, how many more bytes it has
    /// sent (what the sending rsync wrote to ssh), so the link's throughput is known while the
    /// copy is on its way.
    var reportSent: (@Sendable (Int64) async throws -> Void)?
    var reportInterval: Duration = .seconds(2)
    /// After a stop, how long the tool has to end on SIGTERM before SIGKILL (under the local
    /// scheduler's and Slurm's KillWait, so that the runner still records the stop).
    var killAfter: Duration = .seconds(3)

    /// The tool's arguments. Over ssh, rsync gets the remote shell (`-e`) and creates missing
    /// directories; bbcp gets the command that starts bbcp on the target host (`-T`, which bbcp
    /// splits on blanks and in which it replaces %H by the host).
    func arguments(sshOptions: [String] = RemotePath.sshOptions, remoteBBCP: String = RemotePath.remoteBBCP) throws -> [String] {
        if method == .rsync {
            var arguments = ["--partial", "--partial-dir=.ccat-rsync-partial", "--times"]
            if remote { arguments += ["--mkpath", "-e", RemotePath.rsyncShell(sshOptions)] }
            // rsync counts file data in KiB/s; 3% of the share is left for ssh's and TCP's own bytes,
            // so that what crosses the link stays under the cap.
            if let bits = bandwidthLimitBitsPerSecond { arguments.append("--bwlimit=\(max(1, bits * 97 / 100 / 8 / 1024))") }
            return arguments + ["--", source, target]
        }
        var arguments = ["-f", "-P", "10"]
        if remote {
            let words = ["ssh", "-x", "-a"] + sshOptions + ["%H", remoteBBCP]
            if let spaced = words.first(where: { $0.contains(where: \.isWhitespace) }) {
                throw UnsupportedOperation(description: "bbcp splits its ssh command on blanks, so '\(spaced)' cannot be part of it; use a path without blanks for CCAT_SSH_CONFIG and CCAT_REMOTE_BBCP")
            }
            // -z: the source connects to the target for the data streams, so only the receiving
            // site needs open ports (and the target need not resolve the sending node's name).
            arguments += ["-z", "-T", words.joined(separator: " ")]
        }
        return arguments + [source, target]
    }

    func run() async throws {
        let tool = method == .rsync ? "rsync" : "bbcp"
        guard let executable = findExecutable(tool) else {
            throw UnsupportedOperation(description: "\(tool) is not installed on \(ProcessInfo.processInfo.hostName); install it there or change the route's method")
        }
        // A remote target has no local directory: run next to the source instead.
        let directory = ((remote ? source : target) as NSString).deletingLastPathComponent
        let logFD = open(log.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard logFD >= 0 else {
            throw StorageError(kind: .io, location: directory, object: log.path, problem: "cannot open the operation log: \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        /// Ends the tool and what it started: SIGTERM, then SIGKILL after `killAfter`.
        func end(_ process: ChildProcess) async {
            let ended = await process.terminate(grace: killAfter)
            if ended.killed { log.write("\(tool) or what it started still ran \(killAfter) after SIGTERM; sent SIGKILL") }
            if !ended.survivors.isEmpty { log.write("still running after SIGKILL: pids \(ended.survivors.map(String.init).joined(separator: ", "))") }
        }
        var copy = self
        var status: Int32
        while true {
            let arguments = try copy.arguments()
            log.write("running \(executable) \(arguments.joined(separator: " "))")
            let process = try ChildProcess.spawn(executable, arguments, directory: directory, stdout: .descriptor(logFD), stderr: .descriptor(logFD))
            // A stop request (SIGTERM, walltime warning) ends the copy: the tool and what it started
            // (rsync's receiver and generator, ssh), which are looked up every second while it runs,
            // so that they are known even if the tool ends first. rsync keeps its partial data for
            // the next attempt.
            var lastLook = ContinuousClock.now - .seconds(1)
            var lastShareCheck = ContinuousClock.now
            var newShare: Int64?? = nil
            var sent = SentBytes(pid: process.pid)
            while try process.poll() == nil, stop.stopReason == nil {
                if ContinuousClock.now - lastLook >= .seconds(1) {
                    process.noteDescendants()
                    lastLook = .now
                }
                if let reportSent {
                    sent.look()
                    if ContinuousClock.now - sent.lastReport >= reportInterval { await sent.report(to: reportSent, log: log) }
                }
                if method == .rsync, let currentShare, ContinuousClock.now - lastShareCheck >= shareInterval {
                    lastShareCheck = .now
                    let share = try await currentShare()
                    if Self.shareChanged(from: copy.bandwidthLimitBitsPerSecond, to: share) {
                        newShare = .some(share)
                        break
                    }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            if let reportSent { await sent.report(to: reportSent, log: log) }
            if let reason = stop.stopReason {
                log.write("\(reason): sending SIGTERM to \(tool) (pid \(process.pid)) and the \(process.noteDescendants()) processes it started")
                await end(process)
                throw StopRequested(reason: reason)
            }
            if let share = newShare {
                log.write("the link's bandwidth share changed from \(copy.bandwidthLimitBitsPerSecond.map(LinkWindow.rateText) ?? "no cap") to \(share.map(LinkWindow.rateText) ?? "no cap"): "
                          + "restarting rsync (pid \(process.pid)) with it; what has arrived is kept")
                await end(process)
                copy.bandwidthLimitBitsPerSecond = share
                // The receiving rsync moves what it has to its partial directory once it sees the
                // connection close, a round trip or two later; the next rsync starts from there.
                try? await Task.sleep(for: .seconds(2))
                continue
            }
            status = try process.wait()
            break
        }
        try stop.check()
        if remote, method == .rsync, LinkUnreachable.rsyncNetworkStatuses.contains(status) {
            let host = target.split(separator: ":", maxSplits: 1).first.map(String.init) ?? target
            throw LinkUnreachable(host: host, detail: "rsync exited with status \(status); see \(log.path)")
        }
        guard status == 0 else {
            throw StorageError(kind: .transport, location: directory, object: (target as NSString).lastPathComponent,
                               problem: "\(tool) exited with status \(status); see \(log.path)")
        }
    }
}

/// What a sending rsync has written to its ssh (its `wchar` in /proc), looked at every loop of
/// the wait (so little is missed when it ends) and reported as increments.
struct SentBytes {
    let pid: Int32
    var seen: Int64 = 0
    var reported: Int64 = 0
    var lastReport = ContinuousClock.now

    init(pid: Int32) { self.pid = pid }

    mutating func look() {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("wchar:") }),
              let value = Int64(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces)) else { return }
        seen = max(seen, value)
    }

    /// Reports what was sent since the last report; a failure to count is logged, not fatal to
    /// the copy (the optimizer then sees less on the link for a while).
    mutating func report(to reportSent: @Sendable (Int64) async throws -> Void, log: OperationLog) async {
        lastReport = .now
        let increment = seen - reported
        guard increment > 0 else { return }
        do {
            try await reportSent(increment)
            reported = seen
        } catch {
            log.write("could not add \(increment) sent bytes to the link's count: \(error)")
        }
    }
}

extension ExternalCopy {
    /// A new share is worth a restart when a cap comes or goes, or moves by more than 5%.
    static func shareChanged(from old: Int64?, to new: Int64?) -> Bool {
        switch (old, new) {
        case (nil, nil): return false
        case let (old?, new?): return Double(abs(new - old)) > 0.05 * Double(old)
        default: return true
        }
    }
}

func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
