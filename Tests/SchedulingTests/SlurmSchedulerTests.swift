import Foundation
import OpsDB
import Testing
import TestSupport
import Topology
@testable import Scheduling

/// Writes a small job script with real #SBATCH lines and returns its path.
func writeJobScript(in directory: URL, name: String, timeLimitMinutes: Int = 5, body: String) throws -> (path: String, token: String) {
    let token = UUID().uuidString
    let directives = try SbatchDirectives.make(queue: name, profile: BatchProfile(partition: "debug", timeLimitMinutes: timeLimitMinutes, cpus: 1, memoryMB: 64),
                                               stdoutPath: directory.appendingPathComponent("\(name).out").path,
                                               stderrPath: directory.appendingPathComponent("\(name).err").path,
                                               submitToken: token, signalMarginSeconds: 10)
    let path = directory.appendingPathComponent("\(name).sh").path
    try "#!/bin/bash\n\(directives.lines)\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
    return (path, token)
}

/// Polls the scheduler until the job reaches a terminal state or `limit` passes.
func waitForEnd(_ scheduler: any BatchScheduler, _ job: SubmittedJob, limit: Duration = .seconds(180)) async throws -> SchedulerJobStatus? {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if let status = try await scheduler.statuses(of: [job])[job.jobID], status.state.isTerminal { return status }
        try await Task.sleep(for: .seconds(1))
    }
    return nil
}

@Suite("Slurm scheduler against the single-node test cluster", .enabled(if: TestEnvironment.runSlurmTests, "requires the Slurm test cluster: run 'make test' as root with Slurm installed"))
struct SlurmSchedulerTests {
    let scheduler: SlurmScheduler
    let work: URL

    init() throws {
        scheduler = SlurmScheduler(environment: try TestEnvironment.slurmEnvironment())
        work = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    @Test func completedJobIsSeenThroughSacct() async throws {
        let script = try writeJobScript(in: work, name: "ccat_test_completed", body: "echo done")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        #expect(Int(job.jobID) != nil)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .completed)
        #expect(end.exitCode == 0)
        #expect(end.submitToken == script.token)
        #expect(try String(contentsOfFile: work.appendingPathComponent("ccat_test_completed.out").path, encoding: .utf8) == "done\n")
    }

    @Test func nonZeroExitIsFailedWithItsCode() async throws {
        let script = try writeJobScript(in: work, name: "ccat_test_failed", body: "exit 3")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .failed)
        #expect(end.exitCode == 3)
        #expect(JobEndDisposition.forJob(ending: end.state, exitCode: end.exitCode, signal: end.signal)?.reason.contains("exit code 3") == true)
    }

    @Test func scancelIsSeenAsCancelled() async throws {
        let script = try writeJobScript(in: work, name: "ccat_test_cancelled", body: "sleep 300")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        try await scheduler.cancel(job)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .cancelled)
    }

    @Test func exceedingTheTimeLimitIsTimeout() async throws {
        // Ignore the walltime warning (USR2), as a runner would not, so the limit itself ends the job.
        let script = try writeJobScript(in: work, name: "ccat_test_timeout", timeLimitMinutes: 1, body: "trap '' USR2; sleep 600")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let end = try #require(try await waitForEnd(scheduler, job, limit: .seconds(240)))
        #expect(end.state == .timeout)
    }

    @Test func submitTokenFindsTheJob() async throws {
        let script = try writeJobScript(in: work, name: "ccat_test_lookup", body: "sleep 20")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let found = try await scheduler.lookup(submitToken: script.token, jobName: "ccat_test_lookup", cluster: nil)
        #expect(found?.jobID == job.jobID)
        #expect(try await scheduler.lookup(submitToken: UUID().uuidString, jobName: "ccat_test_lookup", cluster: nil) == nil)
        try await scheduler.cancel(job)
    }

    @Test func rejectedSubmissionSaysWhy() async throws {
        let path = work.appendingPathComponent("bad.sh").path
        try "#!/bin/bash\n#SBATCH --partition=no_such_partition\necho\n".write(toFile: path, atomically: true, encoding: .utf8)
        let error = await #expect(throws: SubmissionError.self) { try await scheduler.submit(scriptPath: path, cluster: nil) }
        #expect(error?.transient == false)
        #expect(error?.ambiguous == false)
        #expect(error?.message.lowercased().contains("partition") == true)
    }

    @Test func missingJobsAreUnknownNotFinished() async throws {
        let statuses = try await scheduler.statuses(of: [SubmittedJob(jobID: "999999", cluster: nil)])
        #expect(statuses["999999"] == nil)
    }
}
