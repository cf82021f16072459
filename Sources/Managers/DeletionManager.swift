import Logging
import OpsDB
import Synchronization

/// 7. Temporary copies (SOURCE files, BUFFER packages and bundles; staged data of ended
/// requests) -> DELETION, only when
/// `deletionBlocker` finds nothing against it: verified archive copies at every archive site and
/// no unfinished reader. The runner checks again in the transaction that deletes.
public final class DeletionManager: ManagerCycle, Sendable {
    public let name = "deletion-manager"
    let settings: ManagerSettings
    /// Where the scan continues; wraps around at the end of the table.
    private let cursor = Mutex<Int64>(0)
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let candidates = try await db.deletionCandidates(afterID: cursor.withLock { $0 }, defaultRetentionSeconds: settings.defaultRetentionSeconds,
                                                         limit: settings.batchSize)
        cursor.withLock { $0 = candidates.count < settings.batchSize ? 0 : candidates.last!.copyID }
        var created = 0
        for candidate in candidates {
            created += try await work.attempt("copy \(candidate.copyID)") {
                try await db.transaction { db in
                    if try await db.deletionBlocker(copyID: candidate.copyID, exceptOperation: 0) != nil { return 0 }
                    return try await work.places.schedule(db, OperationPlan(.deletion, at: candidate.locationID, target: .physicalCopy(candidate.copyID)))
                }
            }
        }
        // Staged data of requests that ended: one DELETION removes a job's whole directory.
        created += try await work.scheduleEach(try await db.stagingJobsToClean(limit: settings.batchSize), item: { "staging job \($0.jobID)" }) { job in
            OperationPlan(.deletion, at: job.locationID, target: .stagingJob(job.jobID))
        }
        return created
    }
}
