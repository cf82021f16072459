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
                // No outage grace: the stand-in runner never claims its operations, which would
                // otherwise look like a runner that could not reach the database (OutageTests).
                retryPolicy: RetryPolicy(baseDelaySeconds: 300, maximumDelaySeconds: 1200, outageGraceSeconds: 0))
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

    func submit(scriptPath: String, cluster: String?, environment: [String: String]) async throws -> SubmittedJob {
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
