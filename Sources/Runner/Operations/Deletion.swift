import Archiving
import Foundation
import OpsDB
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The manager asked for a deletion the database no longer allows.
public struct DeletionRefused: Error, Sendable, CustomStringConvertible {
    public var copyID: Int64
    public var reason: String
    public var description: String { "physical copy \(copyID) is not deleted: \(reason)" }
}

/// DELETION: one copy goes, only if the database still allows it. The copy row stays locked from
/// the check until it is marked DELETED, in one transaction, so nothing can start reading it
/// in between.
enum DeletionExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        if case .stagingJob = operation.target { return try await StagingCleanup.run(operation, context: context) }
        let copyID = try target(of: operation, "physical copy or staging job") { if case .physicalCopy(let id) = $0 { id } else { nil } }
        let s3 = context.s3
        let log = context.log
        let deleted: PhysicalCopy = try await context.db.transaction { db in
            let copy = try require(try await db.physicalCopy(id: copyID), "physical copy \(copyID) does not exist")
            if copy.status == .deleted {
                log.write("copy \(copyID) was already deleted at \(copy.deletedAt.map { "\($0)" } ?? "an earlier attempt")")
                return copy
            }
            if let reason = try await db.deletionBlocker(copyID: copyID, exceptOperation: operation.id) {
                throw DeletionRefused(copyID: copyID, reason: reason)
            }
            let target = try await store(for: copy.dataLocationID, db, s3: s3)
            log.write("deleting \(copy.relativePath) from \(target.store.description)")
            try await runBlocking { try target.store.delete(copy.relativePath) }
            try await db.markPhysicalCopyDeleted(id: copyID)
            return copy
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: deleted.sizeBytes ?? 0, resultJSON: resultJSON(["copy": copyID, "path": deleted.relativePath]),
                                    logPath: context.log.path),
            record: { _ in })
    }
}

/// DELETION of a staging job: its request ended (released, expired or cancelled), so the job's
/// directory goes, removed as the requester (nothing outside their own tree can be touched), and
/// its copies are marked DELETED.
enum StagingCleanup {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let (jobID, job, processing, owner) = try await StagingTarget.load(operation, db)
        let log = context.log
        try await db.transaction { db in
            if let reason = try await db.stagingCleanupBlocker(jobID: jobID) {
                throw InvalidOperation(description: "staging job \(jobID) is kept: \(reason)")
            }
            let target = try processing.rooted(job.targetDirectory)
            log.write("removing \(target)")
            try await runBlocking {
                // As the requester, and without following any link below the root.
                try asFileOwner(owner) { try target.removeTree() }
                try? FileManager.default.removeItem(atPath: processing.root + "/.ccat-staging/job-\(jobID)")
            }
            try await db.recordStagingJobCleaned(jobID)
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: 0, resultJSON: resultJSON(["staging_job": jobID, "directory": job.targetDirectory]),
                                    logPath: context.log.path),
            record: { _ in })
    }
}
