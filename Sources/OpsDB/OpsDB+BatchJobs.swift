import Foundation
import Postgres

/// How operations of a failed job go back to the queue.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay after the first failure; doubled for each further attempt, up to `maximumDelay`.
    public var baseDelaySeconds: Double
    public var maximumDelaySeconds: Double
    /// Each delay is spread by up to this fraction either way, so operations that failed together
    /// (a storage outage) do not all come back in the same second.
    public var jitter: Double
    /// How long a streak of outage-like failures (the runner never reached the operation, its lease
    /// lapsed, the peer host did not answer) may last before those failures count as attempts. An
    /// outage shorter than this sends nothing to intervention.
    public var outageGraceSeconds: Double

    public init(baseDelaySeconds: Double = 60, maximumDelaySeconds: Double = 3600, jitter: Double = 0.25, outageGraceSeconds: Double = 3600) {
        self.baseDelaySeconds = baseDelaySeconds
        self.maximumDelaySeconds = maximumDelaySeconds
        self.jitter = min(max(jitter, 0), 1)
        self.outageGraceSeconds = max(0, outageGraceSeconds)
    }
}

extension RetryPolicy {
    /// The assignments that put an operation back in the queue: the attempt counted or not, state
    /// `pending` after `base * 2^attempts` seconds (capped, spread by the jitter), or `intervention` once a counted
    /// failure reaches `max_attempts`; the reason recorded and the lease cleared. One definition
    /// for the tracker's failovers and the runner's own failure reports.
    ///
    /// `outageLike` (an SQL condition on the row, evaluated on its values before the update) marks
    /// the failure as one an outage causes: it starts or continues the operation's outage streak
    /// (`unreached_since`) and is not counted while that streak is younger than the grace. Any
    /// other failure ends the streak.
    public func requeue(countsAsAttempt: Bool, outageLike: PostgresQuery = "false", errorClass: String, reason: String) -> PostgresQuery {
        let counted: PostgresQuery = """
            (\(countsAsAttempt) AND NOT ((\(outageLike)) AND coalesce(unreached_since, now()) > now() - make_interval(secs => \(outageGraceSeconds))))
            """
        return """
        attempts = attempts + CASE WHEN \(counted) THEN 1 ELSE 0 END,
        state = CASE WHEN \(counted) AND attempts + 1 >= max_attempts THEN 'intervention'::operation_state
                     ELSE 'pending'::operation_state END,
        unreached_since = CASE WHEN (\(outageLike)) THEN coalesce(unreached_since, now()) END,
        next_attempt_at = now() + make_interval(secs => least(\(maximumDelaySeconds), \(baseDelaySeconds) * power(2, attempts))
                                                  * (1 - \(jitter) + 2 * \(jitter) * random())),
        last_error = \(reason), error_class = \(errorClass),
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        """
    }
}

/// An operation put back after its job ended without reporting it (or its lease expired).
public struct ReleasedOperation: Codable, Sendable, Equatable {
    public var id: Int64
    public var state: OperationState
    public var attempts: Int
    public var nextAttemptAt: Date
}

extension OpsDB {
    static let batchJobColumns: PostgresQuery = """
        id, scheduler, cluster, submit_token, scheduler_job_id, queue, data_location_id, operation_type, script_path,
        stdout_path, stderr_path, state, reason, exit_code, exit_signal, node, submit_attempts, created_at,
        submitted_at, started_at, ended_at, last_seen_at
        """

    public static let activeJobStates: [BatchJobState] = BatchJobState.allCases.filter { !$0.isTerminal }

    // MARK: Dispatch

    /// Locks up to `limit` due pending operations of `queue`, best first, skipping rows another
    /// dispatcher holds. Call inside a transaction; the rows stay locked until it ends.
    public func lockDueOperations(queue: String, limit: Int) async throws -> [OperationRecord] {
        try await all(OperationRecord.self, """
            SELECT \(Self.operationColumns) FROM operation
            WHERE queue = \(queue) AND state = 'pending' AND next_attempt_at <= now()
            ORDER BY priority DESC, next_attempt_at, id
            LIMIT \(limit)
            FOR UPDATE SKIP LOCKED
            """)
    }

    /// The id the next batch job will have, so its script and log paths can be in the row from the start.
    public func nextBatchJobID() async throws -> Int64 {
        guard let row = try await connection.query("SELECT nextval(pg_get_serial_sequence('batch_job', 'id')) AS id").first else {
            throw PostgresError(code: .misuse, message: "nextval returned no row", query: nil)
        }
        return try row["id"]
    }

    /// Records a job before anything reaches the scheduler (state PREPARED, with its submit token)
    /// and attaches the operations to it (state `submitted`).
    public func createBatchJob(id: Int64, scheduler: BatchSchedulerKind, cluster: String?, queue: String,
                               locationID: Int64, operationType: OperationType, scriptPath: String,
                               stdoutPath: String, stderrPath: String, operationIDs: [Int64]) async throws -> BatchJob {
        try await transaction { db in
            let job = try await db.one(BatchJob.self, """
                INSERT INTO batch_job (id, scheduler, cluster, submit_token, queue, data_location_id, operation_type,
                                       script_path, stdout_path, stderr_path)
                VALUES (\(id), \(scheduler), \(cluster ?? ""), gen_random_uuid(), \(queue), \(locationID), \(operationType),
                        \(scriptPath), \(stdoutPath), \(stderrPath))
                RETURNING \(Self.batchJobColumns)
                """)
            try await db.addBatchJobEvent(job.id, state: .prepared, reason: "\(operationIDs.count) operation\(operationIDs.count == 1 ? "" : "s")")
            try await db.connection.execute("""
                UPDATE operation SET state = 'submitted', batch_job_id = \(job.id), updated_at = now()
                WHERE id = ANY(\(operationIDs)) AND state = 'pending'
                """)
            return job
        }
    }

    public func addBatchJobEvent(_ jobID: Int64, state: BatchJobState, reason: String?) async throws {
        try await connection.execute("INSERT INTO batch_job_event (batch_job_id, state, reason) VALUES (\(jobID), \(state), \(reason))")
    }

    /// Marks the moment `sbatch` is about to run: from here on the job may exist in the scheduler.
    /// `runnerSecretDigest`: the SHA-256 (hex) of the secret the job's runner will present.
    public func markSubmitting(_ jobID: Int64, runnerSecretDigest: String? = nil) async throws {
        try await transaction { db in
            try await db.connection.execute("""
                UPDATE batch_job SET state = 'SUBMITTING', submit_attempts = submit_attempts + 1, updated_at = now(),
                       runner_secret_digest = coalesce(\(runnerSecretDigest), runner_secret_digest)
                WHERE id = \(jobID)
                """)
            try await db.addBatchJobEvent(jobID, state: .submitting, reason: nil)
        }
    }

    /// The scheduler accepted the job (or reconciliation found it).
    public func recordSubmitted(_ jobID: Int64, schedulerJobID: String, cluster: String?, state: BatchJobState = .pending,
                                reason: String? = nil) async throws {
        try await transaction { db in
            try await db.connection.execute("""
                UPDATE batch_job SET scheduler_job_id = \(schedulerJobID), cluster = coalesce(\(cluster), cluster),
                       state = \(state), submitted_at = coalesce(submitted_at, now()), last_seen_at = now(), updated_at = now()
                WHERE id = \(jobID)
                """)
            try await db.addBatchJobEvent(jobID, state: state, reason: reason ?? "scheduler job \(schedulerJobID)")
        }
    }

    /// A job that never reached the scheduler ends here (sbatch refused it, or reconciliation proved
    /// it absent).
    public func endUnsubmittedJob(_ jobID: Int64, state: BatchJobState, reason: String) async throws {
        try await transaction { db in
            try await db.connection.execute("""
                UPDATE batch_job SET state = \(state), reason = \(reason), ended_at = now(), updated_at = now() WHERE id = \(jobID)
                """)
            try await db.addBatchJobEvent(jobID, state: state, reason: reason)
        }
    }

    /// Jobs of `queue` that are not finished, counted against the queue's `max_queued_jobs`.
    public func activeJobCount(queue: String) async throws -> Int {
        try await connection.query("SELECT count(*) AS n FROM batch_job WHERE queue = \(queue) AND state = ANY(\(Self.activeJobStates))")
            .first?["n"] ?? 0
    }

    /// Jobs of `queue` whose submission did not finish (PREPARED or SUBMITTING).
    public func unfinishedSubmissions(queue: String) async throws -> [BatchJob] {
        try await all(BatchJob.self, """
            SELECT \(Self.batchJobColumns) FROM batch_job
            WHERE queue = \(queue) AND state IN ('PREPARED', 'SUBMITTING') ORDER BY id
            """)
    }

    /// Seconds since the job row last changed (server clock).
    public func secondsSinceUpdate(_ jobID: Int64) async throws -> Double {
        try await connection.query("SELECT extract(epoch FROM now() - updated_at)::float8 AS s FROM batch_job WHERE id = \(jobID)")
            .first?["s"] ?? 0
    }

    // MARK: Tracking

    /// Jobs the scheduler has accepted and that have not ended.
    public func trackedJobs(scheduler: BatchSchedulerKind) async throws -> [BatchJob] {
        try await all(BatchJob.self, """
            SELECT \(Self.batchJobColumns) FROM batch_job
            WHERE scheduler = \(scheduler) AND scheduler_job_id IS NOT NULL
              AND state = ANY(\(Self.activeJobStates.filter { $0 != .prepared && $0 != .submitting }))
            ORDER BY id
            """)
    }

    /// Records what the scheduler said about a job; adds an event when the state changed.
    public func recordJobStatus(_ jobID: Int64, state: BatchJobState, previous: BatchJobState, exitCode: Int?, signal: Int?,
                                node: String?, reason: String?) async throws {
        try await transaction { db in
            try await db.connection.execute("""
                UPDATE batch_job SET state = \(state), exit_code = coalesce(\(exitCode), exit_code),
                       exit_signal = coalesce(\(signal), exit_signal), node = coalesce(\(node), node),
                       reason = coalesce(\(reason), reason), last_seen_at = now(), updated_at = now(),
                       started_at = CASE WHEN started_at IS NULL AND \(state) <> 'PENDING' THEN now() ELSE started_at END,
                       ended_at = CASE WHEN \(state.isTerminal) THEN coalesce(ended_at, now()) ELSE ended_at END
                WHERE id = \(jobID)
                """)
            if state != previous {
                try await db.addBatchJobEvent(jobID, state: state, reason: reason)
            }
        }
    }

    /// The scheduler reported these jobs in this pass (one statement for all).
    public func markSeen(_ jobIDs: [Int64]) async throws {
        guard !jobIDs.isEmpty else { return }
        try await connection.execute("UPDATE batch_job SET last_seen_at = now() WHERE id = ANY(\(jobIDs))")
    }

    /// Seconds since the scheduler last reported the job, by id.
    public func secondsSinceSeen(_ jobIDs: [Int64]) async throws -> [Int64: Double] {
        var result: [Int64: Double] = [:]
        for row in try await connection.query("""
            SELECT id, extract(epoch FROM now() - coalesce(last_seen_at, submitted_at, created_at))::float8 AS s
            FROM batch_job WHERE id = ANY(\(jobIDs))
            """) {
            result[try row["id"]] = try row["s"]
        }
        return result
    }

    /// Puts the job's unfinished operations (submitted or running) back: pending after an
    /// exponential delay, or to intervention once a counted failure reaches `max_attempts`.
    @discardableResult
    ///
    /// Outage-like, and so not counted within the policy's grace: operations the job never started
    /// (still `submitted`: its runner did not reach them), and operations whose lease lapsed.
    public func releaseOperations(ofJob jobID: Int64, countsAsAttempt: Bool, errorClass: String, reason: String,
                                  policy: RetryPolicy, onlyExpiredLeases: Bool = false) async throws -> [ReleasedOperation] {
        let leaseCondition: PostgresQuery = onlyExpiredLeases ? "AND state = 'running' AND lease_expires_at < now()" : ""
        let outageLike: PostgresQuery = onlyExpiredLeases ? "true" : "state = 'submitted'"
        return try await all(ReleasedOperation.self, """
            UPDATE operation SET \(policy.requeue(countsAsAttempt: countsAsAttempt, outageLike: outageLike, errorClass: errorClass, reason: reason))
            WHERE batch_job_id = \(jobID) AND state IN ('submitted', 'running') \(leaseCondition)
            RETURNING id, state, attempts, next_attempt_at
            """)
    }

    /// Jobs holding a running operation whose lease has expired.
    public func jobsWithExpiredLeases() async throws -> [Int64] {
        try await connection.query("""
            SELECT DISTINCT batch_job_id FROM operation
            WHERE state = 'running' AND lease_expires_at < now() ORDER BY batch_job_id
            """).map { try $0["batch_job_id"] }
    }

    /// How many of the job's operations are still submitted or running.
    public func liveOperationCount(ofJob jobID: Int64) async throws -> Int {
        try await connection.query("SELECT count(*) AS n FROM operation WHERE batch_job_id = \(jobID) AND state IN ('submitted', 'running')")
            .first?["n"] ?? 0
    }

    // MARK: Reading

    public func batchJob(id: Int64) async throws -> BatchJob? {
        try await optional(BatchJob.self, "SELECT \(Self.batchJobColumns) FROM batch_job WHERE id = \(id)")
    }

    /// Newest first.
    public func batchJobs(queue: String? = nil, states: [BatchJobState]? = nil, limit: Int = 100) async throws -> [BatchJob] {
        try await all(BatchJob.self, """
            SELECT \(Self.batchJobColumns) FROM batch_job
            WHERE (\(queue)::text IS NULL OR queue = \(queue))
              AND (\(states)::batch_job_state[] IS NULL OR state = ANY(\(states)))
            ORDER BY id DESC LIMIT \(limit)
            """)
    }

    public func batchJobEvents(_ jobID: Int64) async throws -> [BatchJobEvent] {
        try await all(BatchJobEvent.self, "SELECT at, state, reason FROM batch_job_event WHERE batch_job_id = \(jobID) ORDER BY at, id")
    }

    /// Operations currently or last attached to the job.
    public func operations(batchJobID: Int64) async throws -> [OperationRecord] {
        try await all(OperationRecord.self, "SELECT \(Self.operationColumns) FROM operation WHERE batch_job_id = \(batchJobID) ORDER BY id")
    }
}

extension OpsDB {
    /// How many operations each job holds (currently or last), by job id.
    public func operationCounts(batchJobIDs: [Int64]) async throws -> [Int64: Int] {
        var counts: [Int64: Int] = [:]
        for row in try await connection.query("""
            SELECT batch_job_id, count(*) AS n FROM operation WHERE batch_job_id = ANY(\(batchJobIDs)) GROUP BY batch_job_id
            """) {
            counts[try row["batch_job_id"]] = try row["n"]
        }
        return counts
    }
}
