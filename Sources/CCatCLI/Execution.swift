import CCatConfig
import Foundation
import Logging
import OpsDB
import Scheduling

/// Where job scripts, logs and local scheduler state live, and which scheduler runs the jobs, from
/// the configuration file with defaults that work on a single machine.
public struct ExecutionSetup: Sendable {
    public var scheduler: BatchSchedulerKind
    public var stateDirectory: String
    public var slurmAccounting: Bool
    public var localConcurrency: Int?

    public init(configuration: CCatConfiguration?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        scheduler = configuration?.scheduler.flatMap(BatchSchedulerKind.init(rawValue:)) ?? .local
        slurmAccounting = configuration?.slurmAccounting ?? true
        localConcurrency = configuration?.localConcurrency
        if let directory = configuration?.stateDirectory {
            stateDirectory = directory
        } else if let directory = environment["CCAT_STATE_DIRECTORY"], !directory.isEmpty {
            stateDirectory = directory
        } else if getuid() == 0 {
            stateDirectory = "/var/lib/ccat"
        } else {
            let stateHome = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? "\(environment["HOME"] ?? NSHomeDirectory())/.local/state"
            stateDirectory = "\(stateHome)/ccat"
        }
    }

    /// Job scripts and their logs: `<state>/jobs/<queue>/<batch job id>/`.
    public var jobDirectory: String { "\(stateDirectory)/jobs" }
    public var localSchedulerDirectory: String { "\(stateDirectory)/local-scheduler" }

    /// The scheduler of `kind` (a job records which one ran it).
    public func makeScheduler(_ kind: BatchSchedulerKind, logger: Logger) throws -> any BatchScheduler {
        switch kind {
        case .slurm:
            return SlurmScheduler(accounting: slurmAccounting, logger: logger)
        case .local:
            return try LocalScheduler(stateDirectory: localSchedulerDirectory,
                                      defaultConcurrency: localConcurrency ?? ProcessInfo.processInfo.activeProcessorCount, logger: logger)
        }
    }
}
