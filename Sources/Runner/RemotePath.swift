import Foundation
import Processes
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// A file on another host, reached with ssh: the runner's own ssh configuration (keys, known
/// hosts, aliases), or the file `CCAT_SSH_CONFIG` names. Never asks for a password (BatchMode).
struct RemotePath: Sendable {
    var host: String
    var path: String

    static var sshOptions: [String] {
        // A link that goes dead under a copy is noticed within a minute (not after TCP's own
        // retries, a quarter of an hour), and an unreachable host within half a minute.
        var options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if let config = ProcessInfo.processInfo.environment["CCAT_SSH_CONFIG"], !config.isEmpty { options = ["-F", config] + options }
        return options
    }

    /// The remote shell for `rsync -e`, which splits it on blanks and honours single quotes.
    static func rsyncShell(_ options: [String]) -> String { (["ssh"] + options).map(shellQuote).joined(separator: " ") }

    /// The program that receives a bbcp copy on the host: `CCAT_REMOTE_BBCP`, else `bbcp` on the
    /// PATH of a non-interactive ssh session there.
    static var remoteBBCP: String {
        let configured = ProcessInfo.processInfo.environment["CCAT_REMOTE_BBCP"] ?? ""
        return configured.isEmpty ? "bbcp" : configured
    }

    /// `host:path`, as rsync and bbcp name a remote target.
    var copyTarget: String { "\(host):\(path)" }


    /// Runs a shell command on the host (at most `timeout`); ssh's own failures (exit 255) are
    /// transport errors.
    func run(_ command: String, timeout: Duration = .seconds(600)) async throws -> (status: Int32, stdout: String) {
        let result: CommandResult
        do {
            result = try await SubprocessRunner().run("ssh", Self.sshOptions + [host, "--", command], environment: nil, timeout: timeout)
        } catch let error as CommandRunError where error.kind == .notFound {
            throw UnsupportedOperation(description: "ssh is not installed on \(ProcessInfo.processInfo.hostName); copies to \(host) need it")
        }
        if result.exitStatus == 255 {
            let said = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            if LinkUnreachable.isNetworkFailure(said) { throw LinkUnreachable(host: host, detail: "ssh: \(said)") }
            throw StorageError(kind: .transport, location: host, object: path,
                               problem: "ssh to \(host) failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); check the runner's ssh keys and known_hosts for \(host)")
        }
        return (result.exitStatus, result.stdout)
    }

    /// True when the file is there with this size and SHA-256 (sha256sum on the host).
    func holds(size: Int64, sha256: String) async throws -> Bool {
        let q = shellQuote(path)
        let answer = try await run("if [ -f \(q) ]; then stat -c %s -- \(q) && sha256sum -- \(q); else echo absent; fi")
        let lines = answer.stdout.split(separator: "\n").map(String.init)
        if answer.status == 0, lines.first == "absent" { return false }
        guard answer.status == 0, lines.count >= 2, let remoteSize = Int64(lines[0]) else {
            throw StorageError(kind: .transport, location: host, object: path, problem: "cannot read the size and SHA-256 of \(path) on \(host) (status \(answer.status))")
        }
        return remoteSize == size && lines[1].prefix(64) == sha256
    }

    /// bbcp does not create the target's directory; rsync does (`--mkpath`).
    func makeParentDirectory() async throws {
        let parent = (path as NSString).deletingLastPathComponent
        let made = try await run("mkdir -p -- \(shellQuote(parent))")
        guard made.status == 0 else {
            throw StorageError(kind: .io, location: host, object: path, problem: "cannot create \(parent) on \(host) (mkdir exited with status \(made.status))")
        }
    }

    func remove() async throws {
        _ = try await run("rm -f -- \(shellQuote(path))")
    }
}

/// The other host did not answer (no route, refused, timed out, the connection dropped): what an
/// outage of the link looks like. Such failures do not use up the operation's attempts while the
/// outage is younger than the retry policy's grace.
struct LinkUnreachable: Error, CustomStringConvertible {
    var host: String
    var detail: String
    var description: String { "\(host) is unreachable (\(detail)); the transfer is retried when the link is back" }

    /// ssh's words for a network failure, as opposed to one of keys or configuration.
    static func isNetworkFailure(_ message: String) -> Bool {
        ["Connection timed out", "No route to host", "Connection refused", "Network is unreachable", "Connection reset",
         "Broken pipe", "Connection closed", "timed out during banner exchange", "Timeout, server", "not responding"]
            .contains { message.localizedCaseInsensitiveContains($0) }
    }

    /// rsync's exit codes for a broken connection: 10 socket I/O, 12 protocol stream (the other
    /// side went away), 30 and 35 timeouts, 255 its ssh ended.
    static let rsyncNetworkStatuses: Set<Int32> = [10, 12, 30, 35, 255]
}
