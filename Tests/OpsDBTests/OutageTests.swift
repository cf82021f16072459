import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// Failures an outage causes do not use up attempts while the outage is younger than the grace;
/// after it, and for every other failure, attempts count as before.
@Suite("Outage-like failures and the outage grace", .enabled(if: TestEnvironment.runPostgresTests))
struct OutageTests {
    @Test func outagesWithinTheGraceSpendNoAttempts() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let fx = try await Fixture.make(db)
            let package = try await db.createRawDataPackage(name: "obs-1", observationID: fx.observation.id, sourceLocationID: fx.source.id,
                                                            relativePath: "packages/obs-1.tar", fileIDs: [])
            let operation = try #require(try await db.createOperation(.rawDataPackageCreation, queue: "q", locationID: fx.source.id,
                                                                      target: .rawDataPackage(package.id)))
            let policy = RetryPolicy(baseDelaySeconds: 0, jitter: 0, outageGraceSeconds: 3600)
            func row() async throws -> (state: String, attempts: Int, since: Date?) {
                let r = try #require(try await connection.query("SELECT state::text AS s, attempts, unreached_since FROM operation WHERE id = \(operation.id)").first)
                return (try r["s"], try r["attempts"], try r["unreached_since"])
            }
            func newJob() async throws -> Int64 {
                try await connection.execute("UPDATE operation SET state = 'pending', next_attempt_at = now() WHERE id = \(operation.id)")
                return try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "q",
                                                   locationID: fx.source.id, operationType: .rawDataPackageCreation, scriptPath: "/tmp/job.sh",
                                                   stdoutPath: "/tmp/job.out", stderrPath: "/tmp/job.err", operationIDs: [operation.id]).id
            }
            func claimAndFail(outageLike: Bool) async throws {
                let job = try await newJob()
                _ = try #require(try await db.claimNextOperation(batchJobID: job, owner: "runner-1", leaseSeconds: 60))
                _ = try await db.failOperation(operation.id, owner: "runner-1", errorClass: outageLike ? "unreachable" : "transfer_error",
                                               message: "test", logPath: nil, policy: policy, outageLike: outageLike)
            }

            // Five jobs whose runner never reached the operation (it stays 'submitted'): no attempt
            // spent, far past max_attempts; the streak starts at the first.
            for _ in 0..<5 {
                let job = try await newJob()
                try await db.releaseOperations(ofJob: job, countsAsAttempt: true, errorClass: "job_failed", reason: "the batch job failed", policy: policy)
            }
            var now = try await row()
            #expect(now.state == "pending" && now.attempts == 0 && now.since != nil, "\(now)")
            let streak = try #require(now.since)
            // A peer that does not answer, and a lapsed lease, continue the same streak.
            try await claimAndFail(outageLike: true)
            let leased = try await newJob()
            _ = try #require(try await db.claimNextOperation(batchJobID: leased, owner: "runner-2", leaseSeconds: 60))
            try await connection.execute("UPDATE operation SET lease_expires_at = now() - interval '1 second' WHERE id = \(operation.id)")
            try await db.releaseOperations(ofJob: leased, countsAsAttempt: true, errorClass: "lease_expired", reason: "lapsed", policy: policy,
                                           onlyExpiredLeases: true)
            now = try await row()
            #expect(now.state == "pending" && now.attempts == 0 && now.since == streak, "\(now)")

            // An outage older than the grace counts again: three more failures reach intervention.
            try await connection.execute("UPDATE operation SET unreached_since = now() - interval '2 hours' WHERE id = \(operation.id)")
            for _ in 0..<3 { try await claimAndFail(outageLike: true) }
            now = try await row()
            #expect(now.state == "intervention" && now.attempts == 3, "\(now)")

            // Any other failure counts at once and ends the streak; a success ends it too.
            try await connection.execute("UPDATE operation SET state = 'pending', attempts = 0, unreached_since = now() WHERE id = \(operation.id)")
            try await claimAndFail(outageLike: false)
            now = try await row()
            #expect(now.attempts == 1 && now.since == nil, "\(now)")
            try await claimAndFail(outageLike: true)
            let job = try await newJob()
            _ = try #require(try await db.claimNextOperation(batchJobID: job, owner: "runner-3", leaseSeconds: 60))
            try await db.completeOperation(operation.id, owner: "runner-3", report: OperationReport(bytesProcessed: 0, resultJSON: "{}", logPath: nil))
            now = try await row()
            #expect(now.state == "succeeded" && now.since == nil, "\(now)")
            // A job that started its operation and then failed is the operation's failure: it counts.
            let other = try #require(try await db.createOperation(.rawDataPackageCreation, queue: "q2", locationID: fx.source.id,
                                                                  target: .rawDataPackage(package.id)))
            let started = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "q2",
                                                      locationID: fx.source.id, operationType: .rawDataPackageCreation, scriptPath: "/tmp/job.sh",
                                                      stdoutPath: "/tmp/job.out", stderrPath: "/tmp/job.err", operationIDs: [other.id])
            _ = try #require(try await db.claimNextOperation(batchJobID: started.id, owner: "runner-4", leaseSeconds: 60))
            let released = try await db.releaseOperations(ofJob: started.id, countsAsAttempt: true, errorClass: "job_failed", reason: "failed", policy: policy)
            #expect(released.map(\.attempts) == [1])
        }
    }
}
