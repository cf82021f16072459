import Foundation
import OpsDB
import Storage

/// MONITORING: reachability and capacity (statvfs, or a HEAD of the bucket) of one location.
enum MonitoringExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let target = try await store(for: operation.dataLocationID, context.db, s3: context.s3)
        let probe = await (try? runBlocking { target.store.probe() }) ?? LocationProbe(reachable: false, errorMessage: "probe failed")
        context.log.write("\(target.store.description): \(probe.reachable ? "reachable" : "unreachable")"
                          + (probe.freeBytes.map { ", \($0) bytes free of \(probe.totalBytes ?? 0)" } ?? "")
                          + (probe.errorMessage.map { " (\($0))" } ?? ""))
        let locationID = operation.dataLocationID
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: 0, resultJSON: resultJSON(["reachable": probe.reachable, "free_bytes": probe.freeBytes ?? -1]),
                                    logPath: context.log.path),
            record: { db in
                try await db.recordLocationStatus(LocationStatus(dataLocationID: locationID, measuredAt: Date(), reachable: probe.reachable,
                                                                 totalBytes: probe.totalBytes, freeBytes: probe.freeBytes,
                                                                 usedBytes: probe.usedBytes, errorMessage: probe.errorMessage))
            })
    }
}
