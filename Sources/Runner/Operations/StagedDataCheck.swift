import Foundation
import OpsDB
import Storage

/// CONSISTENCY_AUDIT of a PROCESSING location: are the files staged for READY requests still
/// there? Scratch file systems are purged behind everyone's back; a request whose files vanished
/// says so (its `reason`), and the files are marked MISSING. Only the staged files are looked at
/// (one stat each), not the rest of the scratch space, which is the scientists' own.
enum StagedDataCheck {
    static let pageSize = 1000

    static func run(_ operation: OperationRecord, processing: DiskStore, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        // A node without the scratch mount would see every staged file gone.
        try processing.requireRoot()
        let run = try await db.startIntegrityRun(.audit, locationID: operation.dataLocationID, operationID: operation.id)
        let log = context.log
        var checked: Int64 = 0
        var gone: [(copy: StagedCopy, detail: String)] = []
        var after: Int64 = 0
        while true {
            if context.stop.stopReason != nil { throw StopRequestedDuringCopy() }
            let page = try await db.readyStagedCopies(locationID: operation.dataLocationID, afterID: after, limit: pageSize)
            guard let last = page.last else { break }
            after = last.id
            let missing: [(StagedCopy, String)] = try await runBlocking {
                try page.compactMap { copy in
                    do {
                        guard let found = try processing.head(copy.relativePath) else { return (copy, "the file is gone") }
                        return copy.sizeBytes.map { $0 == found.size } == false ? (copy, "the file now has \(found.size) bytes, \(copy.sizeBytes ?? 0) were staged") : nil
                    } catch let error as StorageError where error.kind == .invalidPath {
                        return (copy, "the file was replaced: \(error.problem)")
                    }
                }
            }
            checked += Int64(page.count)
            gone += missing.map { (copy: $0.0, detail: $0.1) }
        }
        log.write("staged-data check run \(run.id) of \(processing.description): \(checked) staged files of READY requests, \(gone.count) gone")
        for (copy, detail) in gone.prefix(20) { log.write("GONE \(copy.relativePath): \(detail)") }
        let (found, total) = (gone, checked)
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: 0, resultJSON: resultJSON(["run": run.id, "checked": total, "gone": found.count]),
                                    logPath: log.path),
            record: { db in try await db.finishStagedDataCheck(run.id, checked: total, gone: found) })
    }
}
