import Foundation
import Logging
import OpsDB
import Synchronization

/// 8. Every location is checked every `monitoringIntervalSeconds` (MONITORING operations).
public final class MonitoringManager: ManagerCycle, Sendable {
    public let name = "monitoring-manager"
    let settings: ManagerSettings
    /// When the last round of checks was created.
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let due = last.withLock { last in
            if let last, ContinuousClock.now - last < .seconds(settings.monitoringIntervalSeconds) { return false }
            last = .now
            return true
        }
        guard due else { return 0 }
        let places = try await Places.load(db)
        let setAside = try await SetAside.load(db, manager: name)
        for location in places.locations.values where location.active {
            _ = try await setAside.attempt(db, "location \(location.id) (\(location.name))", logger: logger) {
                try await places.schedule(db, .monitoring, at: location.id, target: .none)
            }
        }
        // Monitoring results are no work for the other managers: report nothing, wake no one.
        return 0
    }
}
