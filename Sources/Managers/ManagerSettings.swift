import Auth
import CCatConfig
import Foundation
import OpsDB
import Postgres
import Scheduling
import Topology

/// What the managers decide with. The values `ccat daemon` can set come from `DaemonSettings`
/// (their defaults, and the meaning of each, are written there once).
public struct ManagerSettings: Sendable {
    /// Files of an observation are packaged once none has arrived for this long.
    public var packageSettleSeconds: Double
    /// A bundle is closed at this size, or ...
    public var bundleMaxBytes: Int64
    /// ... when its oldest package has waited this long.
    public var bundleMaxAgeSeconds: Double
    /// SOURCE and BUFFER copies stay at least this long after they were written, unless the
    /// location sets its own `retention`.
    public var defaultRetentionSeconds: Double
    /// How often each location is checked (MONITORING operations).
    public var monitoringIntervalSeconds: Double
    /// Single transfer attempts are kept this long, then folded into daily totals per link.
    public var transferHistoryDays = 30
    /// How often a long-term archive gets a fixity pass.
    public var fixityIntervalSeconds: Double
    /// How often the link optimizer decides each link's concurrent transfer jobs.
    public var linkDecisionSeconds: Double
    /// Rows a manager handles per query; a full batch makes it go again at once.
    public var batchSize = 200
    /// munged that decodes scientists' staging request credentials.
    public var munge = Munge()
    /// Slurm, asked about a job before its data is staged on behalf of its owner (burst-buffer
    /// requests); nil when the daemon does not use Slurm, and such requests are refused.
    public var slurmJobs: (any SlurmJobLookup)?
    /// Sentinel jobs of `--slurm-dependency` requests; nil without Slurm.
    public var sentinels: (any SentinelJobs)?
    /// Packages of one staging request go into jobs of up to this many bytes.
    public var stagingJobMaxBytes: Int64
    /// How long staged data is kept after it is ready, unless the location sets `retention`.
    public var stagingRetentionSeconds: Int64

    public init(daemon: DaemonSettings = DaemonSettings()) {
        packageSettleSeconds = daemon.packageSettle
        bundleMaxBytes = daemon.bundleMaxBytes
        bundleMaxAgeSeconds = daemon.bundleMaxAge
        defaultRetentionSeconds = daemon.retention
        monitoringIntervalSeconds = daemon.monitoringInterval
        fixityIntervalSeconds = daemon.fixityInterval
        linkDecisionSeconds = daemon.linkDecisionInterval
        stagingJobMaxBytes = daemon.stagingJobMaxBytes
        stagingRetentionSeconds = daemon.stagingRetention
    }
}

func sanitizedName(_ text: String) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    var result = String(text.map { allowed.contains($0) ? $0 : "_" })
    while let first = result.first, !first.isLetter && !first.isNumber { result.removeFirst() }
    return result.isEmpty ? "obs" : result
}

/// Locations and sites by id, loaded once per cycle (small tables).
struct Places {
    let locations: [Int64: DataLocation]
    let sites: [Int64: Site]

    static func load(_ db: OpsDB) async throws -> Places {
        Places(locations: Dictionary(uniqueKeysWithValues: try await db.locations().map { ($0.id, $0) }),
               sites: Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.id, $0) }))
    }

    func queue(_ locationID: Int64, _ operation: OperationType) throws -> String {
        guard let location = locations[locationID], let site = sites[location.siteID] else {
            throw PostgresError(code: .misuse, message: "location \(locationID) vanished while scheduling \(operation.rawValue)")
        }
        return OperationMatrix.queueName(site: site.shortName, location: location.name, operation: operation)
    }

    func siteName(of locationID: Int64) -> String? {
        locations[locationID].flatMap { sites[$0.siteID]?.shortName }
    }

    /// Creates the operation `plan` describes on the queue of its location; 1 if created, 0 if a
    /// live one already holds the target (the unique indexes decide).
    func schedule(_ db: OpsDB, _ plan: OperationPlan) async throws -> Int {
        try await db.createOperation(plan.type, queue: queue(plan.locationID, plan.type), locationID: plan.locationID, target: plan.target,
                                     targetLocationID: plan.targetLocationID, sizeHintBytes: plan.sizeHintBytes,
                                     priority: plan.priority) == nil ? 0 : 1
    }
}
