import Logging
import OpsDB

/// 6. Scientists' requests -> staging jobs (see `StagingRequestCycle`); staging jobs -> STAGING at their PROCESSING location, on its own queue (its submission
/// profile can give it a higher priority than archiving), with a higher operation priority so
/// scientists' data goes before background work in shared queues.
public struct StagingManager: ManagerCycle {
    public let name = "staging-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let decided = try await StagingRequestCycle(settings: settings).run(db, logger: logger)
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        return decided + (try await work.scheduleEach(try await db.stagingJobsWithoutOperation(limit: settings.batchSize),
                                                      item: { "staging job \($0)" }) { id in
            guard let job = try await db.stagingJob(id: id) else { return nil }
            let size = try await db.stagingJobPackages(id).reduce(Int64(0)) { $0 + ($1.sizeBytes ?? 0) }
            return OperationPlan(.staging, at: job.destinationLocationID, target: .stagingJob(id), sizeHintBytes: size, priority: 10)
        })
    }
}
