import Foundation
import OpsDB
import Storage
import Synchronization

/// CONSISTENCY_AUDIT: lists one location's storage (a directory walk, or ListObjectsV2 page by
/// page) into the runner's session and compares it with the catalogue: copies the storage lost
/// (or holds with another size), objects the catalogue does not know (dark: reported, never
/// deleted here), and temporary files of interrupted writes older than a day. Lost copies are
/// marked MISSING, and repaired, unless the safety brake finds the location suspect as a whole.
enum ConsistencyAuditExecution {
    /// Listing pages in flight between the storage walk and the database.
    static let pagesInFlight = 2
    static let pageSize = 1000

    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let locationID = operation.dataLocationID
        let target = try await store(for: locationID, db, s3: context.s3)
        if target.location.locationType == .processing {
            guard let processing = target.store as? DiskStore else {
                throw UnsupportedOperation(description: "PROCESSING location '\(target.location.name)' is not a POSIX file system; its staged files cannot be checked")
            }
            return try await StagedDataCheck.run(operation, processing: processing, context: context)
        }
        let policy = try await db.integrityPolicy(locationID: locationID)
        let run = try await db.startIntegrityRun(.audit, locationID: locationID, operationID: operation.id)
        let log = context.log
        log.write("audit run \(run.id) of \(target.store.description): \(run.cataloguedCopies) catalogued copies")
        try await db.beginAuditListing()
        let listed = try await streamListing(of: target.store, shouldStop: context.shouldStop) { page in
            try await db.addAuditListing(page.map { ListedObject(key: $0.key, size: $0.size, modified: $0.modified ?? run.startedAt) })
        }
        let counts = try await db.auditCounts(locationID: locationID, listedSince: run.startedAt)
        let unfinished = try await runBlocking { try target.store.incompleteWrites(startedBefore: run.startedAt.addingTimeInterval(-86_400)) }
            .map { ListedObject(key: $0.key, size: 0, modified: $0.modified ?? run.startedAt) }
        let limit = policy.brakeLimit(copies: run.cataloguedCopies)
        // An empty listing of a location that should hold copies is never believed (rucio/rucio#4170).
        let looksEmpty = listed == 0 && run.cataloguedCopies > 0
        let suspect = counts.lost > limit || looksEmpty
        let message = suspect ? Brake.message(bad: counts.lost, of: run.cataloguedCopies, limit: limit, runID: run.id,
                                              what: looksEmpty ? "the storage listing is empty" : "missing from the storage listing") : nil
        log.write("listed \(listed) objects: \(counts.lost) lost, \(counts.dark) dark, \(counts.staleTemporary) stale temporary files, "
                  + "\(unfinished.count) writes unfinished for over a day")
        if let message { log.write(message) }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: 0,
                                    resultJSON: resultJSON(["run": run.id, "listed": listed, "lost": counts.lost, "dark": counts.dark,
                                                            "stale_temporary": counts.staleTemporary + Int64(unfinished.count), "suspect": suspect]),
                                    logPath: log.path),
            record: { db in
                try await db.finishAuditRun(run.id, locationID: locationID, listedSince: run.startedAt, listed: listed, counts: counts,
                                            incompleteWrites: unfinished, brakeLimit: limit, suspect: suspect, message: message)
            })
    }

    /// Walks the store on a thread of its own and hands each page to `consume`, with at most
    /// `pagesInFlight` pages waiting, so memory stays bounded however large the location is.
    /// Returns how many objects were listed.
    static func streamListing(of store: any ObjectStore, shouldStop: @escaping ShouldStop,
                              consume: ([StoredObject]) async throws -> Void) async throws -> Int64 {
        let room = DispatchSemaphore(value: pagesInFlight)
        let abandoned = AbandonFlag()
        let (pages, continuation) = AsyncThrowingStream<[StoredObject], any Error>.makeStream()
        DispatchQueue.global().async {
            do {
                try store.listPages(prefix: "", pageSize: pageSize) { page in
                    room.wait()
                    if abandoned.value.load(ordering: .acquiring) || shouldStop() { throw StopRequestedDuringCopy() }
                    continuation.yield(page)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        defer {
            abandoned.value.store(true, ordering: .releasing)
            for _ in 0...pagesInFlight { room.signal() }
        }
        var listed: Int64 = 0
        for try await page in pages {
            try await consume(page)
            listed += Int64(page.count)
            room.signal()
        }
        return listed
    }
}

/// Set when the consumer of a listing gives up, so the walk stops at its next page.
final class AbandonFlag: Sendable {
    let value = Atomic<Bool>(false)
}
