import Foundation
import OpsDB
import Processes
import Testing
import TestSupport
import Topology
@testable import Scheduling

/// The schedulers the integration tests run against: the embedded one always, Slurm where the test
/// cluster runs (and always in CI, where its absence fails the tests).
enum SchedulerUnderTest: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case slurm, local

    static var available: [SchedulerUnderTest] { TestEnvironment.runSlurmTests ? [.slurm, .local] : [.local] }

    var testDescription: String { rawValue }

    /// A scheduler of this kind; the local one keeps its state under `work`.
    func make(work: URL) throws -> any BatchScheduler {
        switch self {
        // The product's 30 s limit on one Slurm command can run out on a loaded test machine;
        // tests of ambiguous submissions make their own timeouts.
        case .slurm: return SlurmScheduler(environment: try TestEnvironment.slurmEnvironment(), timeout: .seconds(150))
        case .local: return try LocalScheduler(stateDirectory: work.appendingPathComponent("local-scheduler").path, killWait: .seconds(2))
        }
    }
}

func makeWorkDirectory(_ label: String) throws -> URL {
    try testScratchDirectory(label)
}

/// Writes a small job script with real #SBATCH lines and returns its path.
func writeJobScript(in directory: URL, name: String, timeLimitMinutes: Int = 5, signalMarginSeconds: Int = 10, body: String) throws -> (path: String, token: String) {
    let token = UUID().uuidString.lowercased()
    let directives = try SbatchDirectives.make(queue: name, profile: BatchProfile(partition: "debug", timeLimitMinutes: timeLimitMinutes, cpus: 1, memoryMB: 64),
                                               stdoutPath: directory.appendingPathComponent("\(name).out").path,
                                               stderrPath: directory.appendingPathComponent("\(name).err").path,
                                               submitToken: token, signalMarginSeconds: signalMarginSeconds)
    let path = directory.appendingPathComponent("\(name).sh").path
    try "#!/bin/bash\n\(directives.lines)\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
    return (path, token)
}

/// Polls the scheduler until the job reaches a terminal state or `limit` passes.
func waitForEnd(_ scheduler: any BatchScheduler, _ job: SubmittedJob, limit: Duration = .seconds(360)) async throws -> SchedulerJobStatus? {
    try await waitForState(scheduler, job, limit: limit) { $0.isTerminal }
}

func waitForState(_ scheduler: any BatchScheduler, _ job: SubmittedJob, limit: Duration = .seconds(360),
                  _ accept: (BatchJobState) -> Bool) async throws -> SchedulerJobStatus? {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        do {
            if let status = try await scheduler.statuses(of: [job])[job.jobID], accept(status.state) { return status }
        } catch let error where isSchedulerCommandError(error) {
            // One failed query (a busy slurmdbd) is not the answer; the next one may be.
        }
        try await Task.sleep(for: .milliseconds(500))
    }
    return nil
}

/// An error of a scheduler command itself (sacct or squeue timing out, or exiting non-zero while
/// the controller or slurmdbd is busy): what the daemon's next cycle tries again.
func isSchedulerCommandError(_ error: any Error) -> Bool {
    error is SlurmOutputError || error is CommandRunError
}
