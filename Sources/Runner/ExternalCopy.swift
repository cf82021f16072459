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
        let arguments = try arguments()
        log.write("running \(executable) \(arguments.joined(separator: " "))")
        let logFD = open(log.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard logFD >= 0 else {
            throw StorageError(kind: .io, location: directory, object: log.path, problem: "cannot open the operation log: \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        let process = try ChildProcess.spawn(executable, arguments, directory: directory, stdout: .descriptor(logFD), stderr: .descriptor(logFD))
        // A stop request (SIGTERM, walltime warning) ends the copy: the tool and what it started
        // (rsync's receiver and generator, ssh), which are looked up every second while it runs,
        // so that they are known even if the tool ends first. rsync keeps its partial data for
        // the next attempt.
        var lastLook = ContinuousClock.now - .seconds(1)
        while try process.poll() == nil, stop.stopReason == nil {
            if ContinuousClock.now - lastLook >= .seconds(1) {
                process.noteDescendants()
                lastLook = .now
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if let reason = stop.stopReason {
            log.write("\(reason): sending SIGTERM to \(tool) (pid \(process.pid)) and the \(process.noteDescendants()) processes it started")
            let ended = await process.terminate(grace: killAfter)
            if ended.killed { log.write("\(tool) or what it started still ran \(killAfter) after SIGTERM; sent SIGKILL") }
            if !ended.survivors.isEmpty { log.write("still running after SIGKILL: pids \(ended.survivors.map(String.init).joined(separator: ", "))") }
            throw StopRequested(reason: reason)
        }
        let status = try process.wait()
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

func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
