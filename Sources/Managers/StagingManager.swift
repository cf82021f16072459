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
        var created = try await StagingRequestCycle(settings: settings).run(db, logger: logger)
        let places = try await Places.load(db)
        let setAside = try await SetAside.load(db, manager: name)
        for id in try await db.stagingJobsWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "staging job \(id)", logger: logger) {
                guard let job = try await db.stagingJob(id: id) else { return 0 }
                let size = try await db.stagingJobPackages(id).reduce(Int64(0)) { $0 + ($1.sizeBytes ?? 0) }
                guard try await places.schedule(db, .staging, at: job.destinationLocationID, target: .stagingJob(id), sizeHintBytes: size, priority: 10) == 1 else { return 0 }
                logger.info("staging job \(id) scheduled", metadata: ["staging_job": "\(id)"])
                return 1
            }
        }
        return created
    }
}
