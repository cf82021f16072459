import Foundation
import OpsDB
import Testing
import TestSupport
import Topology
@testable import Scheduling

/// The same behaviour from Slurm (single-node test cluster) and from the embedded local scheduler.
@Suite("Batch schedulers: Slurm and local")
struct SchedulerTests {

    @Test(arguments: SchedulerUnderTest.available)
    func completedJobIsSeenAsCompleted(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("completedJobIsSeenAsCompleted")
        let scheduler = try kind.make(work: work)
        let script = try writeJobScript(in: work, name: "ccat_test_completed", body: "echo done")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        #expect(Int(job.jobID) != nil)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .completed)
        #expect(end.exitCode == 0)
        #expect(end.submitToken == script.token)
        #expect(try String(contentsOfFile: work.appendingPathComponent("ccat_test_completed.out").path, encoding: .utf8) == "done\n")
    }

    @Test(arguments: SchedulerUnderTest.available)
    func nonZeroExitIsFailedWithItsCode(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("nonZeroExitIsFailedWithItsCode")
        let scheduler = try kind.make(work: work)
        let script = try writeJobScript(in: work, name: "ccat_test_failed", body: "exit 3")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .failed)
        #expect(end.exitCode == 3)
        #expect(JobEndDisposition.forJob(ending: end.state, exitCode: end.exitCode, signal: end.signal)?.reason.contains("exit code 3") == true)
    }

    @Test(arguments: SchedulerUnderTest.available)
    func cancelIsSeenAsCancelled(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("cancelIsSeenAsCancelled")
        let scheduler = try kind.make(work: work)
        let script = try writeJobScript(in: work, name: "ccat_test_cancelled", body: "sleep 300")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        try await scheduler.cancel(job)
        let end = try #require(try await waitForEnd(scheduler, job))
        #expect(end.state == .cancelled)
    }

    @Test(arguments: SchedulerUnderTest.available)
    func exceedingTheTimeLimitIsTimeout(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("exceedingTheTimeLimitIsTimeout")
        let scheduler = try kind.make(work: work)
        // Note the walltime warning (USR2) and carry on, so the limit itself ends the job.
        let body = "trap 'echo warned' USR2; sleep 600 & pid=$!; while kill -0 $pid 2>/dev/null; do wait $pid; done"
        let script = try writeJobScript(in: work, name: "ccat_test_timeout", timeLimitMinutes: 1, body: body)
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let end = try #require(try await waitForEnd(scheduler, job, limit: .seconds(480)))
        #expect(end.state == .timeout)
        #expect(try String(contentsOfFile: work.appendingPathComponent("ccat_test_timeout.out").path, encoding: .utf8).contains("warned"))
    }

    @Test(arguments: SchedulerUnderTest.available)
    func submitTokenFindsTheJob(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("submitTokenFindsTheJob")
        let scheduler = try kind.make(work: work)
        let script = try writeJobScript(in: work, name: "ccat_test_lookup", body: "sleep 20")
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        let found = try await scheduler.lookup(submitToken: script.token, jobName: "ccat_test_lookup", cluster: nil)
        #expect(found?.jobID == job.jobID)
        #expect(try await scheduler.lookup(submitToken: UUID().uuidString, jobName: "ccat_test_lookup", cluster: nil) == nil)
        try await scheduler.cancel(job)
    }

    @Test(arguments: SchedulerUnderTest.available)
    func rejectedSubmissionSaysWhy(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("rejectedSubmissionSaysWhy")
        let scheduler = try kind.make(work: work)
        let path = work.appendingPathComponent("bad.sh").path
        try "#!/bin/bash\n#SBATCH --partition=no_such_partition\necho\n".write(toFile: path, atomically: true, encoding: .utf8)
        // Slurm refuses the partition; the local scheduler refuses a cluster it cannot reach.
        let cluster: String? = kind == .local ? "elsewhere" : nil
        let error = await #expect(throws: SubmissionError.self) { try await scheduler.submit(scriptPath: path, cluster: cluster) }
        #expect(error?.transient == false)
        #expect(error?.ambiguous == false)
        #expect(error?.message.lowercased().contains(kind == .local ? "cluster" : "partition") == true)
    }

    @Test(arguments: SchedulerUnderTest.available)
    func missingJobsAreUnknownNotFinished(_ kind: SchedulerUnderTest) async throws {
        let work = try makeWorkDirectory("missingJobsAreUnknownNotFinished")
        let scheduler = try kind.make(work: work)
        let statuses = try await scheduler.statuses(of: [SubmittedJob(jobID: "999999", cluster: nil)])
        #expect(statuses["999999"] == nil)
    }
}

/// The embedded scheduler enforces time limits only when it is polled. A poll that comes late
/// must not cut a job's cleanup short, nor let it run on without bound.
@Suite("Local scheduler: polls that come late")
struct LocalSchedulerLatePollTests {
    /// Submits a one-minute job with a warning (USR2) `margin` seconds before its limit and
    /// returns once it runs, its pid is known and its trap is set (a warning sent before the
    /// script's bash has read its `trap` line would kill it, which says nothing about the
    /// scheduler). `trap` runs on the warning; `$pid` is the sleep.
    static func running(_ name: String, margin: Int = 10, trap: String) async throws -> (LocalScheduler, SubmittedJob, URL) {
        let work = try makeWorkDirectory(name)
        let scheduler = try LocalScheduler(stateDirectory: work.appendingPathComponent("local-scheduler").path, killWait: .seconds(2))
        let body = "trap '\(trap)' USR2; echo trap set; sleep 600 & pid=$!; while kill -0 $pid 2>/dev/null; do wait $pid; done"
        let script = try writeJobScript(in: work, name: name, timeLimitMinutes: 1, signalMarginSeconds: margin, body: body)
        let job = try await scheduler.submit(scriptPath: script.path, cluster: nil)
        // Polled as if the clock said an hour earlier: the scheduler learns the pids but sends no
        // warning yet. With a margin longer than the limit the warning is due at once, and a real
        // poll could send it before bash has read its `trap` line (on a busy machine it did).
        let started = try await eventually(within: .seconds(120), every: .milliseconds(50)) {
            try await scheduler.poll(now: Date().addingTimeInterval(-3600))
            return try await scheduler.allRecords().first(where: { String($0.id) == job.jobID })?.scriptPid != nil
                && output(work, name).contains("trap set")
        }
        try #require(started, "the job never started")
        return (scheduler, job, work)
    }

    static func output(_ work: URL, _ name: String) -> String {
        (try? String(contentsOfFile: work.appendingPathComponent("\(name).out").path, encoding: .utf8)) ?? ""
    }

    @Test func theWarningSentLateStillGetsItsMarginBeforeTheLimitEndsTheJob() async throws {
        let name = "ccat_test_late_warning"
        let (scheduler, job, work) = try await Self.running(name, trap: "echo warned; sleep 1; echo cleaned up; kill $pid; exit 0")
        // The first poll after the start comes 61 s later: past the warning point and the limit.
        try await scheduler.poll(now: Date().addingTimeInterval(61))
        let end = try #require(try await waitForEnd(scheduler, job, limit: .seconds(60)))
        #expect(end.state == .completed, "\(end)")
        let output = Self.output(work, name)
        #expect(output.contains("warned") && output.contains("cleaned up"), "\(output)")
    }

    @Test func aJobThatIgnoresTheWarningEndsOnceItsMarginRanOut() async throws {
        let name = "ccat_test_late_limit"
        let (scheduler, job, work) = try await Self.running(name, trap: "echo warned")
        let started = Date()
        try await scheduler.poll(now: started.addingTimeInterval(61))
        _ = try await eventually(within: .seconds(60), every: .milliseconds(50)) { Self.output(work, name).contains("warned") }
        try await scheduler.poll(now: started.addingTimeInterval(65))
        #expect(try await scheduler.statuses(of: [job])[job.jobID]?.state == .running)
        try await scheduler.poll(now: started.addingTimeInterval(72))
        let end = try #require(try await waitForEnd(scheduler, job, limit: .seconds(60)))
        #expect(end.state == .timeout, "\(end)")
        #expect(Self.output(work, name).contains("warned"))
    }

    /// A margin longer than the limit: warned at the start, and still ended at the limit.
    @Test func aMarginLongerThanTheLimitDoesNotExtendIt() async throws {
        let name = "ccat_test_long_margin"
        let (scheduler, job, work) = try await Self.running(name, margin: 120, trap: "echo warned")
        let started = Date()
        try await scheduler.poll(now: started.addingTimeInterval(1))
        _ = try await eventually(within: .seconds(60), every: .milliseconds(50)) { Self.output(work, name).contains("warned") }
        try await scheduler.poll(now: started.addingTimeInterval(63))
        let end = try #require(try await waitForEnd(scheduler, job, limit: .seconds(60)))
        #expect(end.state == .timeout, "\(end)")
    }
}
