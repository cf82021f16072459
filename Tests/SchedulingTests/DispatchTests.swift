import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport
import Topology
@testable import Scheduling

@Suite("Dispatching and tracking batch jobs (Slurm and local)")
struct DispatchTests {
    @Test(arguments: SchedulerUnderTest.available)
    func completedJobRunsItsOperations(_ kind: SchedulerUnderTest) async throws {
        let probe = SubmissionProbe(mode: .passThrough)
        try await DispatchFixture.with(kind, behaviour: "report", wrap: { probe.wrapping($0) }) { fixture in
            let ids = try await fixture.addOperations(3)
            let report = try await fixture.dispatcher.dispatch(fixture.queue)
            #expect(report.jobsSubmitted == 1)
            // One sbatch, and one more for each the controller refused for now.
            #expect(report.sbatchCalls == 1 + probe.realTransientFailures)
            #expect(report.operationsSubmitted == 3)
            let job = try #require(try await fixture.jobs().first)
            #expect(try await fixture.operations().map(\.batchJobID) == Array(repeating: job.id, count: 3))
            // The script is kept at the recorded per-job path and is valid bash.
            #expect(job.scriptPath.hasPrefix(fixture.settings.jobDirectory + "/\(fixture.queue.name)/\(job.id)/"))
            #expect(try runProcess("/bin/bash", ["-n", job.scriptPath]).status == 0)
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .completed)
            #expect(ended.exitCode == 0)
            #expect(try await fixture.operations().map(\.state) == [.succeeded, .succeeded, .succeeded])
            #expect(try await fixture.operations().map(\.id) == ids)
            let history = try await fixture.db.batchJobEvents(job.id).map(\.state)
            #expect(history.first == .prepared)
            #expect(history.contains(.submitting))
            #expect(history.last == .completed)
            #expect(try String(contentsOfFile: try #require(ended.stdoutPath), encoding: .utf8).contains("reported job \(job.id)"))
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func nonZeroExitRetriesWithBackoffThenIntervention(_ kind: SchedulerUnderTest) async throws {
        try await DispatchFixture.with(kind, behaviour: "exit3") { fixture in
            try await fixture.addOperations(1)
            for attempt in 1...3 {
                let report = try await fixture.dispatcher.dispatch(fixture.queue)
                #expect(report.jobsSubmitted == 1, "attempt \(attempt)")
                let job = try #require(try await fixture.jobs().first)
                let ended = try await fixture.track(job.id) { $0.state.isTerminal }
                #expect(ended.state == .failed)
                #expect(ended.exitCode == 3)
                let operation = try #require(try await fixture.operations().first)
                #expect(operation.attempts == attempt)
                #expect(operation.errorClass == "job_failed")
                #expect(operation.lastError?.contains("exit code 3") == true)
                if attempt < 3 {
                    #expect(operation.state == .pending)
                    // 300 s after the first failure, 600 s after the second, each spread by up to 25%
                    // (long enough that the check below cannot find it due again on a slow machine).
                    let delay = operation.nextAttemptAt.timeIntervalSince(operation.updatedAt)
                    let expected = 300 * pow(2, Double(attempt - 1))
                    #expect(delay >= expected * 0.75 - 1 && delay <= expected * 1.25 + 1, "delay \(delay)")
                    // Not due yet: nothing is dispatched.
                    #expect(try await fixture.dispatcher.dispatch(fixture.queue).jobsSubmitted == 0)
                    try await fixture.db.connection.execute("UPDATE operation SET next_attempt_at = now()")
                } else {
                    #expect(operation.state == .intervention)
                }
            }
            #expect(try await fixture.dispatcher.dispatch(fixture.queue).jobsSubmitted == 0)
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func cancelledJobIsRetried(_ kind: SchedulerUnderTest) async throws {
        try await DispatchFixture.with(kind, behaviour: "sleep") { fixture in
            try await fixture.addOperations(2)
            _ = try await fixture.dispatcher.dispatch(fixture.queue)
            let job = try #require(try await fixture.jobs().first)
            _ = try await fixture.track(job.id) { $0.state == .running }
            let submitted = try #require(job.submitted)
            try await fixture.scheduler.cancel(SubmittedJob(jobID: submitted.jobID, cluster: submitted.cluster))
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .cancelled)
            let operations = try await fixture.operations()
            #expect(operations.map(\.state) == [.pending, .pending])
            #expect(operations.map(\.errorClass) == ["job_cancelled", "job_cancelled"])
            #expect(operations.map(\.attempts) == [1, 1])
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func timeLimitIsTimeoutAfterTheWarningSignal(_ kind: SchedulerUnderTest) async throws {
        // Slurm may send --signal up to 60 s before the time asked for: with two minutes and a
        // 10 s margin the warning still comes long after the runner has set its trap.
        try await DispatchFixture.with(kind, behaviour: "sleep", timeLimitMinutes: kind == .slurm ? 2 : 1) { fixture in
            fixture.settings.signalMarginSeconds = 10
            try await fixture.addOperations(1)
            _ = try await fixture.dispatcher.dispatch(fixture.queue)
            let job = try #require(try await fixture.jobs().first)
            let ended = try await fixture.track(job.id, limit: .seconds(480)) { $0.state.isTerminal }
            #expect(ended.state == .timeout)
            let operation = try #require(try await fixture.operations().first)
            #expect(operation.state == .pending)
            #expect(operation.errorClass == "job_timeout")
            #expect(try String(contentsOfFile: try #require(ended.stdoutPath), encoding: .utf8).contains("USR2 received"))
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func expiredLeaseFailsOverWhileTheJobStillRuns(_ kind: SchedulerUnderTest) async throws {
        try await DispatchFixture.with(kind, behaviour: "hang") { fixture in
            try await fixture.addOperations(2)
            _ = try await fixture.dispatcher.dispatch(fixture.queue)
            let job = try #require(try await fixture.jobs().first)
            // The stand-in claims the operations with a 2-second lease and never renews it. On the
            // shared two-core Slurm node the job may queue behind the end-to-end runs for minutes.
            // Only watch here: a tracker poll that lands after the lease ran out would already fail
            // the operations over, and the assertions below would find nothing left to do.
            let deadline = ContinuousClock.now + .seconds(360)
            while try await fixture.operations().contains(where: { $0.state != .running }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(try await fixture.operations().map(\.state) == [.running, .running])
            // Let the lease run out, and wait until the scheduler itself says RUNNING (sacct can lag
            // behind the job's real start under load).
            try await Task.sleep(for: .seconds(3))
            let schedulerJobID = try #require(job.schedulerJobID)
            let running = try await waitForState(fixture.scheduler, SubmittedJob(jobID: schedulerJobID, cluster: nil), limit: .seconds(300)) {
                $0 == .running
            }
            #expect(running?.state == .running)
            let report = try await fixture.tracker.poll()
            #expect(report.expiredLeases == 2)
            #expect(report.jobsCancelled == 1)
            let operations = try await fixture.operations()
            #expect(operations.map(\.state) == [.pending, .pending])
            #expect(operations.map(\.errorClass) == ["lease_expired", "lease_expired"])
            #expect(operations.allSatisfy { $0.leaseOwner == nil && $0.attempts == 1 })
            // The hung job is cancelled so it does not hold its allocation until the time limit.
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .cancelled)
            // Its end does not touch the operations a second time.
            #expect(try await fixture.operations().map(\.attempts) == [1, 1])
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func ambiguousSubmissionIsFoundByItsToken(_ kind: SchedulerUnderTest) async throws {
        let probe = SubmissionProbe(mode: .ambiguousAfterSubmitting)
        try await DispatchFixture.with(kind, behaviour: "report", wrap: { probe.wrapping($0) }) { fixture in
            try await fixture.addOperations(2)
            // Nothing is submitted a second time while the token may still turn up.
            fixture.settings.ambiguousGraceSeconds = 3600
            var report = try await fixture.dispatcher.dispatch(fixture.queue)
            let job = try await fixture.adoptedJob(passes: &report)
            #expect(report.reconciled == 1)
            #expect(report.jobsSubmitted == 1)
            #expect(try await fixture.jobs().count == 1)
            // One sbatch reached the scheduler (and one more for each it refused for now), and the
            // job recorded is the one it holds under the token.
            #expect(probe.realSubmitCalls == 1 + probe.realTransientFailures)
            #expect(job.schedulerJobID == (try await fixture.schedulerJobID(carrying: job)))
            // Where the real sbatch answered before the probe's timeout, that is its id.
            if let answered = probe.submittedIDs.first { #expect(job.schedulerJobID == answered) }
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .completed)
            #expect(try await fixture.operations().map(\.state) == [.succeeded, .succeeded])
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func ambiguousSubmissionThatNeverArrivedIsResubmittedOnceAfterTheGrace(_ kind: SchedulerUnderTest) async throws {
        let probe = SubmissionProbe(mode: .ambiguousWithoutSubmitting(times: 1))
        try await DispatchFixture.with(kind, behaviour: "report", wrap: { probe.wrapping($0) }) { fixture in
            try await fixture.addOperations(2)
            fixture.settings.ambiguousGraceSeconds = 3600
            #expect(try await fixture.dispatcher.dispatch(fixture.queue).jobsSubmitted == 0)
            let job = try #require(try await fixture.jobs().first)
            #expect(job.state == .submitting)
            // Within the grace period the token is looked up, nothing is submitted again, and the
            // operations stay with their job.
            let again = try await fixture.dispatcher.dispatch(fixture.queue)
            #expect(again.sbatchCalls == 0)
            #expect(try await fixture.operations().map(\.state) == [.submitted, .submitted])
            fixture.settings.ambiguousGraceSeconds = 0
            var resumed = try await fixture.dispatcher.dispatch(fixture.queue)
            // Resubmitted once; should that real sbatch itself not answer in time, the job is then
            // found by its token, never submitted a third time.
            fixture.settings.ambiguousGraceSeconds = 3600
            let submitted = try await fixture.adoptedJob(passes: &resumed)
            #expect(resumed.jobsSubmitted == 1)
            #expect(resumed.sbatchCalls == 1 + probe.realTransientFailures)
            #expect(probe.realSubmitCalls == 1 + probe.realTransientFailures)
            #expect(probe.submittedIDs.count <= 1)
            #expect(submitted.schedulerJobID == (try await fixture.schedulerJobID(carrying: submitted)))
            #expect(try await fixture.jobs().count == 1)
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .completed)
            #expect(ended.submitToken == job.submitToken)
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func transientErrorsAreRetriedAndRejectionsReleaseTheOperations(_ kind: SchedulerUnderTest) async throws {
        let probe = SubmissionProbe(mode: .transient(times: 2))
        try await DispatchFixture.with(kind, behaviour: "report", wrap: { probe.wrapping($0) }) { fixture in
            try await fixture.addOperations(1)
            fixture.settings.ambiguousGraceSeconds = 3600
            // Room for a real refusal from a busy controller beside the two the probe makes.
            fixture.settings.submitTries = 6
            var report = try await fixture.dispatcher.dispatch(fixture.queue)
            // The third call reaches the real scheduler; if that one does not answer in time, the
            // job is found by its token.
            let job = try await fixture.adoptedJob(passes: &report)
            #expect(report.jobsSubmitted == 1)
            #expect(report.sbatchCalls == 2 + probe.realSubmitCalls)
            #expect(probe.realSubmitCalls == 1 + probe.realTransientFailures)
            #expect(probe.submittedIDs.count <= 1)
            #expect(try await fixture.track(job.id) { $0.state.isTerminal }.state == .completed)

            // A profile the scheduler refuses: the job fails and its operation goes back, counted.
            try await fixture.addOperations(1)
            switch kind {
            case .slurm: fixture.queue.profile.partition = "no_such_partition"
            case .local: fixture.queue.profile.cluster = "elsewhere"
            }
            let transientBefore = probe.realTransientFailures
            let refused = try await fixture.dispatcher.dispatch(fixture.queue)
            #expect(refused.failedSubmissions == 1)
            // A rejection is not tried again (a busy controller's "not now" before it is).
            #expect(refused.sbatchCalls == 1 + probe.realTransientFailures - transientBefore)
            let failed = try #require(try await fixture.jobs().first)
            #expect(failed.state == .failed)
            #expect(failed.schedulerJobID == nil)
            let operation = try #require(try await fixture.operations().last)
            #expect(operation.state == .pending)
            #expect(operation.errorClass == "submission_rejected")
            #expect(operation.attempts == 1)
        }
    }

    @Test(arguments: SchedulerUnderTest.available)
    func packingAndQueuedJobLimit(_ kind: SchedulerUnderTest) async throws {
        let probe = SubmissionProbe(mode: .passThrough)
        try await DispatchFixture.with(kind, behaviour: "report", wrap: { probe.wrapping($0) }) { fixture in
            try await fixture.addOperations(250)
            fixture.queue.profile.maxOperationsPerJob = 100
            fixture.queue.profile.maxQueuedJobs = 2
            // Small operations: the count limit binds, not the walltime (JobPackingTests cover that).
            fixture.settings.secondsPerOperation = 0.1
            let report = try await fixture.dispatcher.dispatch(fixture.queue)
            #expect(report.jobsSubmitted == 2)
            #expect(report.sbatchCalls == 2 + probe.realTransientFailures)
            #expect(report.operationsSubmitted == 200)
            let states = try await fixture.operations().map(\.state)
            // A job may already have run its share: dispatched means no longer pending.
            #expect(states.filter { $0 != .pending }.count == 200)
            #expect(states.filter { $0 == .pending }.count == 50)
            // The queue is full until a job ends.
            #expect(try await fixture.dispatcher.dispatch(fixture.queue).sbatchCalls == 0)
            for job in try await fixture.jobs() { _ = try await fixture.track(job.id) { $0.state.isTerminal } }
            #expect(try await fixture.dispatcher.dispatch(fixture.queue).operationsSubmitted == 50)
        }
    }
}
