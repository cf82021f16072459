import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("ccat ops: list, show, retry, cancel against a real PostgreSQL")
struct OperationCommandTests {
    @Test func retryAndCancelFollowTheStateMachineAndSayWhyNot() async throws {
        try await withTestDatabase { database, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let fx = try await Fixture.make(db)
            let package = try await db.createRawDataPackage(name: "obs-1", observationID: fx.observation.id, sourceLocationID: fx.source.id,
                                                            relativePath: "packages/obs-1.tar", fileIDs: [])
            let first = try #require(try await db.createOperation(.rawDataPackageCreation, queue: "q", locationID: fx.source.id,
                                                                  target: .rawDataPackage(package.id)))
            // Pending work can be cancelled, with the reason kept.
            let cancelled = try await db.cancelOperation(first.id, reason: "operator: wrong buffer")
            #expect(cancelled.state == .cancelled && cancelled.lastError == "operator: wrong buffer")
            await #expect(throws: OperationChangeRefused.self) { try await db.cancelOperation(first.id, reason: "again") }

            // Retrying is refused while another live operation does the same work.
            let second = try #require(try await db.createOperation(.rawDataPackageCreation, queue: "q", locationID: fx.source.id,
                                                                   target: .rawDataPackage(package.id)))
            let duplicate = await #expect(throws: OperationChangeRefused.self) { try await db.retryOperation(first.id) }
            #expect(duplicate?.description.contains("another live operation") == true)

            // An operation out of attempts comes back pending with fresh attempts.
            try await connection.execute("UPDATE operation SET state = 'intervention', attempts = 3, error_class = 'io_error', last_error = 'disk full' WHERE id = \(second.id)")
            let retried = try await db.retryOperation(second.id)
            #expect(retried.state == .pending && retried.attempts == 0)
            await #expect(throws: OperationChangeRefused.self) { try await db.retryOperation(second.id) }

            // Work held by a batch job is cancelled through the job.
            let job = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "q",
                                                  locationID: fx.source.id, operationType: .rawDataPackageCreation,
                                                  scriptPath: "/tmp/job.sh", stdoutPath: "/tmp/job.out", stderrPath: "/tmp/job.err", operationIDs: [second.id])
            try await connection.execute("UPDATE operation SET state = 'submitted' WHERE id = \(second.id)")
            let held = await #expect(throws: OperationChangeRefused.self) { try await db.cancelOperation(second.id, reason: "no") }
            #expect(held?.description.contains("ccat jobs cancel \(job.id)") == true)

            // The command line shows the same, as JSON for scripts.
            try await connection.execute("UPDATE operation SET state = 'intervention', error_class = 'io_error', last_error = 'disk full' WHERE id = \(second.id)")
            let environment = ["CCAT_DATABASE_URL": database.conninfo]
            let list = try await runExecutable("ccat", ["ops", "list", "--state", "attention", "--json"], environment: environment)
            #expect(list.status == 0, "\(list.stderr)")
            let listed = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
            #expect(listed?.compactMap { $0["id"] as? Int } == [Int(second.id)])
            let show = try await runExecutable("ccat", ["ops", "show", String(second.id)], environment: environment)
            #expect(show.stdout.contains("error:      io_error: disk full"), "\(show.stdout)")
            let retry = try await runExecutable("ccat", ["ops", "retry", String(second.id), String(first.id)], environment: environment)
            #expect(retry.status != 0)
            #expect(retry.stdout.contains("operation \(second.id) is pending again"))
            #expect(retry.stderr.contains("operation \(first.id) cannot be retried"), "\(retry.stderr)")
        }
    }
}
