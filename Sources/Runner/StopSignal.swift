import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Set when the runner is told to stop: SIGUSR2 (Slurm's walltime warning, `--signal=B:USR2@...`)
/// or SIGTERM (scancel, shutdown). The work in progress checks it between blocks.
public final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var reason: String?
    private var sources: [any DispatchSourceSignal] = []

    public init() {}

    public var stopReason: String? { lock.withLock { reason } }

    public func request(_ why: String) {
        lock.withLock { if reason == nil { reason = why } }
    }

    /// Routes SIGUSR2 and SIGTERM here instead of letting them kill the process.
    public func installHandlers() {
        for (number, name) in [(SIGUSR2, "SIGUSR2 (time limit near)"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.request("received \(name)") }
            source.resume()
            sources.append(source)
        }
    }

    /// Throws `StopRequested` once a stop was requested.
    public func check() throws {
        if let reason = stopReason { throw StopRequested(reason: reason) }
    }
}

public struct StopRequested: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "stopped: \(reason)" }
}
