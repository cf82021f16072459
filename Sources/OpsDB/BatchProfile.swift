import Foundation

/// How a queue's batch jobs are submitted: the `#SBATCH` settings and dispatch limits. Every field
/// is optional; a location's profile overlays the topology-wide defaults, and a per-operation
/// override overlays the location's profile.
public struct BatchProfile: Codable, Sendable, Equatable {
    public var partition: String?
    public var account: String?
    public var qos: String?
    public var timeLimitMinutes: Int?
    public var cpus: Int?
    public var memoryMB: Int?
    /// `--constraint`: node features where this storage is mounted.
    public var constraint: String?
    public var nodelist: String?
    /// `-M`: the Slurm cluster to submit to.
    public var cluster: String?
    /// Further `#SBATCH` directives, each starting with `--`.
    public var extra: [String]
    public var maxQueuedJobs: Int?
    public var maxOperationsPerJob: Int?
    public var maxBytesPerJob: Int64?

    /// Column names of `submission_profile` where they differ from the property names (the row
    /// decoder maps camelCase to snake_case).
    enum CodingKeys: String, CodingKey {
        case partition, account, qos, timeLimitMinutes, cpus, memoryMB, nodelist, cluster
        case maxQueuedJobs, maxOperationsPerJob, maxBytesPerJob
        case constraint = "nodeConstraint"
        case extra = "extraDirectives"
    }

    public init(partition: String? = nil, account: String? = nil, qos: String? = nil, timeLimitMinutes: Int? = nil,
                cpus: Int? = nil, memoryMB: Int? = nil, constraint: String? = nil, nodelist: String? = nil,
                cluster: String? = nil, extra: [String] = [], maxQueuedJobs: Int? = nil,
                maxOperationsPerJob: Int? = nil, maxBytesPerJob: Int64? = nil) {
        self.partition = partition
        self.account = account
        self.qos = qos
        self.timeLimitMinutes = timeLimitMinutes
        self.cpus = cpus
        self.memoryMB = memoryMB
        self.constraint = constraint
        self.nodelist = nodelist
        self.cluster = cluster
        self.extra = extra
        self.maxQueuedJobs = maxQueuedJobs
        self.maxOperationsPerJob = maxOperationsPerJob
        self.maxBytesPerJob = maxBytesPerJob
    }

    /// `other`'s settings win where it has them; extra directives accumulate.
    public func overlaid(with other: BatchProfile) -> BatchProfile {
        BatchProfile(
            partition: other.partition ?? partition, account: other.account ?? account, qos: other.qos ?? qos,
            timeLimitMinutes: other.timeLimitMinutes ?? timeLimitMinutes, cpus: other.cpus ?? cpus,
            memoryMB: other.memoryMB ?? memoryMB, constraint: other.constraint ?? constraint,
            nodelist: other.nodelist ?? nodelist, cluster: other.cluster ?? cluster,
            extra: extra + other.extra.filter { !extra.contains($0) },
            maxQueuedJobs: other.maxQueuedJobs ?? maxQueuedJobs,
            maxOperationsPerJob: other.maxOperationsPerJob ?? maxOperationsPerJob,
            maxBytesPerJob: other.maxBytesPerJob ?? maxBytesPerJob)
    }

    public var isEmpty: Bool { self == BatchProfile() }

    /// `2:00:00`-style Slurm time for display and `--time`.
    public static func formatMinutes(_ minutes: Int) -> String {
        let days = minutes / 1440, hours = minutes / 60 % 24, mins = minutes % 60
        let hm = "\(hours < 10 && days > 0 ? "0" : "")\(hours):\(mins < 10 ? "0" : "")\(mins):00"
        return days > 0 ? "\(days)-\(hm)" : hm
    }
}
