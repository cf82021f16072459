import Foundation
import Logging
import OpsDB
import Synchronization

/// 8. Every location is checked every `monitoringIntervalSeconds` (MONITORING operations),
/// transfer attempts older than `transferHistoryDays` are folded into daily totals per link, and
/// the catalogue's tally into one row per figure.
public final class MonitoringManager: ManagerCycle, Sendable {
    public let name = "monitoring-manager"
    let settings: ManagerSettings
    /// When the last round of checks was created.
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        // Every cycle, not only when checks are due: the catalogue's tally stays a few hundred rows.
        try await db.foldCatalogueTally()
        let due = last.withLock { last in
            if let last, ContinuousClock.now - last < .seconds(settings.monitoringIntervalSeconds) { return false }
            last = .now
            return true
        }
        guard due else { return 0 }
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let active = work.places.locations.values.filter(\.active).sorted { $0.id < $1.id }
        _ = try await work.scheduleEach(active, item: { "location \($0.id) (\($0.name))" }) { location in
            OperationPlan(.monitoring, at: location.id, target: .none)
        }
        // The throughput history keeps single attempts for a while, then daily totals per link.
        try await db.foldTransferAttempts(olderThanDays: settings.transferHistoryDays)
        // Monitoring results are no work for the other managers: report nothing, wake no one.
        return 0
    }
}
