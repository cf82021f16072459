import OpsDB
import Postgres

/// A queue: one (active location, operation) pair, and the batch profile its jobs are submitted with.
public struct Queue: Codable, Sendable, Equatable {
    public var name: String
    public var siteShortName: String
    public var locationName: String
    public var locationID: Int64
    public var locationType: LocationType
    public var operation: OperationType
    public var profile: BatchProfile
}

/// Derives the queues from the database (the reference system's QueueDiscoveryService): every
/// active location, every operation the matrix allows there. The dispatcher runs it every cycle,
/// so a changed topology counts from the next one (`ccat topology apply` and `ccat routes
/// add|remove` wake the daemon at once with NOTIFY `ccat_work`).
public enum QueueDiscovery {
    public static func discover(_ db: OpsDB) async throws -> [Queue] {
        let sites = Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.id, $0.shortName) })
        var profiles: [Int64: [OperationType?: BatchProfile]] = [:]
        for entry in try await db.allSubmissionProfiles() {
            profiles[entry.locationID, default: [:]][entry.operation] = entry.profile
        }
        var queues: [Queue] = []
        for location in try await db.locations(activeOnly: true) {
            guard let site = sites[location.siteID] else { continue }
            let base = profiles[location.id]?[nil] ?? BatchProfile()
            for operation in OperationMatrix.operations(for: location.locationType) {
                let profile = profiles[location.id]?[operation].map { base.overlaid(with: $0) } ?? base
                queues.append(Queue(
                    name: OperationMatrix.queueName(site: site, location: location.name, operation: operation),
                    siteShortName: site, locationName: location.name, locationID: location.id,
                    locationType: location.locationType, operation: operation, profile: profile))
            }
        }
        return queues.sorted { $0.name < $1.name }
    }
}
