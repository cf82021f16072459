import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport
import Topology
@testable import Scheduling

/// Stands in for `ccat-runner` (which the runner issue builds) in job scripts rendered from the real
/// templates: what it does with the job's operations comes from `CCAT_TEST_BEHAVIOUR`.
let standInRunner = #"""
    #!/bin/bash
    # Called as: run --batch-job ID
    job=$3
    sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$CCAT_TEST_CONNINFO" -c "$1"; }
    wait_forever() { sleep 600 & pid=$!; while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done; }
    trap 'echo "USR2 received"' USR2
    case "$CCAT_TEST_BEHAVIOUR" in
      report)
        sql "UPDATE operation SET state = 'running', lease_owner = 'stand-in', lease_expires_at = now() + interval '1 minute', started_at = now() WHERE batch_job_id = $job AND state = 'submitted'"
        sql "UPDATE operation SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, finished_at = now() WHERE batch_job_id = $job AND state = 'running'"
        echo "reported job $job" ;;
      exit3) exit 3 ;;
      sleep) wait_forever ;;
      hang)
        sql "UPDATE operation SET state = 'running', lease_owner = 'stand-in', lease_expires_at = now() + interval '2 seconds', started_at = now() WHERE batch_job_id = $job AND state = 'submitted'"
        wait_forever ;;
      *) echo "unknown behaviour '$CCAT_TEST_BEHAVIOUR'" >&2; exit 64 ;;
    esac
    """#

/// One test's world: a migrated database with the example topology, a scheduler, a dispatcher and
/// a tracker whose jobs run the stand-in runner.
struct DispatchFixture {
    let kind: SchedulerUnderTest
    let database: TestDatabase
    let db: OpsDB
    let work: URL
    let scheduler: any BatchScheduler
    var queue: Queue
    var settings: DispatchSettings

    static func with(_ kind: SchedulerUnderTest, behaviour: String, timeLimitMinutes: Int = 5,
                     wrap: ((any BatchScheduler) -> any BatchScheduler)? = nil,
                     _ body: (inout DispatchFixture) async throws -> Void) async throws {
        try await withTestDatabase { database, connection in
            try await Migrator.bundled().migrate(connection)
            let spec = try TopologyParser.parse(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("etc/topology.example.yaml").path)
            _ = try await TopologySync().apply(spec, to: connection)
            let db = OpsDB(connection)
            var queue = try #require(try await QueueDiscovery.discover(db).first { $0.operation == .dataTransfer })
            queue.profile = BatchProfile(partition: "debug", timeLimitMinutes: timeLimitMinutes, cpus: 1, memoryMB: 64)
            let work = try makeWorkDirectory("dispatch")
            let runner = work.appendingPathComponent("stand-in-runner").path
            try standInRunner.write(toFile: runner, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: runner)
            let real = try kind.make(work: work)
            let settings = DispatchSettings(
                jobDirectory: work.appendingPathComponent("jobs").path, runnerPath: runner,
                environment: [("CCAT_TEST_CONNINFO", database.conninfo), ("CCAT_TEST_BEHAVIOUR", behaviour)],
                signalMarginSeconds: 30, minimumSubmitInterval: .milliseconds(10), submitRetryDelay: .milliseconds(50),
                retryPolicy: RetryPolicy(baseDelaySeconds: 30, maximumDelaySeconds: 600))
            var fixture = DispatchFixture(kind: kind, database: database, db: db, work: work, scheduler: wrap?(real) ?? real,
                                          queue: queue, settings: settings)
            do {
                try await body(&fixture)
            } catch {
                // A test that failed still frees its Slurm slots for the tests that follow.
                try? await fixture.cancelLeftovers()
                throw error
            }
            try await fixture.cancelLeftovers()
        }
    }

    var dispatcher: Dispatcher {
        get throws {
            Dispatcher(db: db, scheduler: scheduler, renderer: try JobScriptRenderer(builtinDirectory: TestEnvironment.repositoryRoot.appendingPathComponent("jobscripts").path),
                       settings: settings)
        }
    }

    var tracker: JobTracker { JobTracker(db: db, scheduler: scheduler, policy: settings.retryPolicy) }

    @discardableResult
    func addOperations(_ count: Int, sizeBytes: Int64 = 1000) async throws -> [Int64] {
        var ids: [Int64] = []
        for _ in 0..<count {
            let operation = try await db.createOperation(queue.operation, queue: queue.name, locationID: queue.locationID, target: .none, sizeHintBytes: sizeBytes)
            ids.append(try #require(operation).id)
        }
        return ids
    }

    func operations() async throws -> [OperationRecord] {
        try await db.operations(queue: queue.name)
    }

    func jobs() async throws -> [BatchJob] { try await db.batchJobs() }

    /// The queue's one batch job once the dispatcher has recorded its scheduler id. A submission
    /// that ended ambiguously is found by its token in the pass that made it or, when the
    /// scheduler registers the job late (a loaded controller), in a later pass; every pass made
    /// here is added to `passes`.
    func adoptedJob(passes: inout DispatchReport, limit: Duration = .seconds(300)) async throws -> BatchJob {
        let deadline = ContinuousClock.now + limit
        while true {
            let job = try #require(try await jobs().first)
            if job.schedulerJobID != nil { return job }
            guard ContinuousClock.now < deadline else {
                Issue.record("batch job \(job.id) still has no scheduler id after \(limit) (state \(job.state.rawValue))")
                return job
            }
            try await Task.sleep(for: .seconds(1))
            passes.add(try await dispatcher.dispatch(queue))
        }
    }

    /// The id under which the scheduler itself holds the job's submit token.
    func schedulerJobID(carrying job: BatchJob) async throws -> String? {
        try await scheduler.lookup(submitToken: job.submitToken.uuidString.lowercased(), jobName: queue.name, cluster: nil)?.jobID
    }

    /// Polls the tracker until the job's recorded state satisfies `accept`.
    /// A status query that fails (sacct timing out or refused while slurmdbd is busy) is what the
    /// daemon's next cycle retries; here too, the next poll does.
    func track(_ jobID: Int64, limit: Duration = .seconds(360), until accept: (BatchJob) -> Bool) async throws -> BatchJob {
        let deadline = ContinuousClock.now + limit
        var lastSchedulerError: (any Error)?
        while true {
            do {
                _ = try await tracker.poll()
            } catch let error where isSchedulerCommandError(error) {
                lastSchedulerError = error
            }
            let job = try #require(try await db.batchJob(id: jobID))
            if accept(job) { return job }
            guard ContinuousClock.now < deadline else {
                Issue.record("batch job \(jobID) still \(job.state.rawValue) after \(limit); last scheduler error: \(lastSchedulerError.map { "\($0)" } ?? "none")")
                return job
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    func cancelLeftovers() async throws {
        for job in try await jobs() where !job.state.isTerminal {
            if let submitted = job.submitted { try? await scheduler.cancel(SubmittedJob(jobID: submitted.jobID, cluster: submitted.cluster)) }
        }
    }
}

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
                    // 30 s after the first failure, 60 s after the second, each spread by up to 25%.
                    let delay = operation.nextAttemptAt.timeIntervalSince(operation.updatedAt)
                    let expected = 30 * pow(2, Double(attempt - 1))
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

/// Wraps a real scheduler to reproduce submission failures: a timeout after the job was queued, a
/// timeout before it was, or transient refusals. The real call under it may itself end ambiguously
/// or fail on a loaded machine (sbatch not answering in time): the probe counts every call that
/// reached the real scheduler and keeps the ids of those that returned one, so tests can tell
/// what the scheduler really saw.
final class SubmissionProbe: @unchecked Sendable {
    enum Mode { case passThrough, ambiguousAfterSubmitting, ambiguousWithoutSubmitting(times: Int), transient(times: Int) }
    let mode: Mode
    private let lock = NSLock()
    private var ids: [String] = []
    private var realCalls = 0
    private var realTransient = 0
    private var failures = 0

    init(mode: Mode) { self.mode = mode }

    /// Job ids the real scheduler returned (a real call that itself failed or timed out adds none).
    var submittedIDs: [String] { lock.withLock { ids } }
    /// Calls that reached the real scheduler, whatever they returned.
    var realSubmitCalls: Int { lock.withLock { realCalls } }
    /// Real calls the scheduler refused for now ("Socket timed out" from a busy controller): the
    /// dispatcher rightly tries those again, so they add to its sbatch calls.
    var realTransientFailures: Int { lock.withLock { realTransient } }

    func wrapping(_ scheduler: any BatchScheduler) -> any BatchScheduler { ProbingScheduler(inner: scheduler, probe: self) }

    /// Whether this call should fail before reaching the scheduler.
    func failsBefore() -> SubmissionError? {
        lock.withLock {
            switch mode {
            case .ambiguousWithoutSubmitting(let times) where failures < times:
                failures += 1
                return SubmissionError(transient: true, ambiguous: true, message: "sbatch did not answer in time (test)")
            case .transient(let times) where failures < times:
                failures += 1
                return SubmissionError(transient: true, ambiguous: false, message: "Socket timed out on send/recv operation (test)")
            default:
                return nil
            }
        }
    }

    func countRealCall() { lock.withLock { realCalls += 1 } }
    func countRealTransientFailure() { lock.withLock { realTransient += 1 } }
    func record(_ id: String) { lock.withLock { ids.append(id) } }
}

struct ProbingScheduler: BatchScheduler {
    let inner: any BatchScheduler
    let probe: SubmissionProbe
    var kind: BatchSchedulerKind { inner.kind }

    func submit(scriptPath: String, cluster: String?) async throws -> SubmittedJob {
        if let error = probe.failsBefore() { throw error }
        probe.countRealCall()
        let job: SubmittedJob
        do {
            job = try await inner.submit(scriptPath: scriptPath, cluster: cluster)
        } catch let error as SubmissionError where error.transient && !error.ambiguous {
            probe.countRealTransientFailure()
            throw error
        }
        probe.record(job.jobID)
        if case .ambiguousAfterSubmitting = probe.mode {
            throw SubmissionError(transient: true, ambiguous: true, message: "sbatch did not answer in time (test)")
        }
        return job
    }

    func statuses(of jobs: [SubmittedJob]) async throws -> [String: SchedulerJobStatus] { try await inner.statuses(of: jobs) }
    func lookup(submitToken: String, jobName: String, cluster: String?) async throws -> SchedulerJobStatus? {
        try await inner.lookup(submitToken: submitToken, jobName: jobName, cluster: cluster)
    }
    func cancel(_ job: SubmittedJob) async throws { try await inner.cancel(job) }
}
