import Foundation
import Logging
import OpsDB
import Scheduling
import Topology

/// The dispatcher as a service: every queue of the topology, pending operations -> batch jobs.
public struct DispatchCycle: ManagerCycle {
    public let name = "dispatcher"
    let scheduler: any BatchScheduler
    let renderer: JobScriptRenderer
    let settings: DispatchSettings

    public init(scheduler: any BatchScheduler, renderer: JobScriptRenderer, settings: DispatchSettings) {
        self.scheduler = scheduler
        self.renderer = renderer
        self.settings = settings
    }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let dispatcher = Dispatcher(db: db, scheduler: scheduler, renderer: renderer, settings: settings, logger: logger)
        var submitted = 0
        for queue in try await QueueDiscovery.discover(db) {
            do {
                submitted += try await dispatcher.dispatch(queue).operationsSubmitted
            } catch {
                // One queue's trouble (its cluster down, a bad profile) does not stop the others.
                logger.error("dispatching a queue failed", metadata: ["queue": "\(queue.name)", "error": "\(error)"])
            }
        }
        return submitted
    }
}

/// The job tracker as a service: one status query per cycle for all active jobs, lost jobs and
/// expired leases put back to work. It wakes on the interval, not on NOTIFY.
public struct TrackCycle: ManagerCycle {
    public let name = "job-tracker"
    let scheduler: any BatchScheduler
    let policy: RetryPolicy

    public init(scheduler: any BatchScheduler, policy: RetryPolicy) {
        self.scheduler = scheduler
        self.policy = policy
    }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let report = try await JobTracker(db: db, scheduler: scheduler, policy: policy, logger: logger).poll()
        if report.operationsReleased > 0 { try await db.notifyWork("operations released") }
        return 0
    }
}
