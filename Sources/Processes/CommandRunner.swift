import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// What a finished command returned.
public struct CommandResult: Sendable, Equatable {
    public var exitStatus: Int32
    /// Set when the command was killed by a signal.
    public var signal: Int32?
    public var stdout: String
    public var stderr: String

    public var succeeded: Bool { exitStatus == 0 && signal == nil }

    public init(exitStatus: Int32, signal: Int32? = nil, stdout: String, stderr: String) {
        self.exitStatus = exitStatus
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// A command could not be run, or did not finish in time (its process group was then terminated).
public struct CommandRunError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case notFound, timedOut, failedToLaunch }
    public var kind: Kind
    public var command: String
    public var detail: String
    public var description: String {
        switch kind {
        case .notFound: return "\(command): not found on PATH; is it installed here?"
        case .timedOut: return "\(command): no answer within \(detail); the process was terminated"
        case .failedToLaunch: return "\(command): could not be started: \(detail)"
        }
    }
}

/// Runs scheduler commands. The real one uses swift-subprocess; tests of pure logic may use another.
public protocol CommandRunner: Sendable {
    func run(_ executable: String, _ arguments: [String], environment: [String: String]?, timeout: Duration) async throws -> CommandResult
}

/// Runs commands in their own session (process group), collects up to 4 MiB of output each way,
/// and on timeout sends SIGTERM, then SIGKILL after two seconds.
public struct SubprocessRunner: CommandRunner {
    public init() {}

    public func run(_ executable: String, _ arguments: [String], environment: [String: String]?, timeout: Duration) async throws -> CommandResult {
        let options: PlatformOptions = {
            var options = PlatformOptions()
            options.createSession = true
            options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(2))]
            return options
        }()
        let env: Subprocess.Environment = environment.map { values in
            .custom(Dictionary(uniqueKeysWithValues: values.map { (Subprocess.Environment.Key(rawValue: $0.key)!, $0.value) }))
        } ?? .inherit
        let display = ([executable] + arguments).joined(separator: " ")
        return try await withThrowingTaskGroup(of: CommandResult?.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(.name(executable), arguments: Arguments(arguments), environment: env,
                                                          platformOptions: options,
                                                          output: .string(limit: 4 << 20), error: .string(limit: 4 << 20))
                    var status: Int32 = 0
                    var signal: Int32?
                    switch result.terminationStatus {
                    case .exited(let code): status = code
                    case .signaled(let code): status = 128 + code; signal = code
                    }
                    return CommandResult(exitStatus: status, signal: signal, stdout: result.standardOutput, stderr: result.standardError)
                } catch let error as SubprocessError {
                    if error.code == .executableNotFound {
                        throw CommandRunError(kind: .notFound, command: executable, detail: "\(error)")
                    }
                    throw CommandRunError(kind: .failedToLaunch, command: display, detail: "\(error)")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            guard let first = try await group.next(), let result = first else {
                group.cancelAll()
                throw CommandRunError(kind: .timedOut, command: display, detail: "\(timeout)")
            }
            group.cancelAll()
            return result
        }
    }
}
