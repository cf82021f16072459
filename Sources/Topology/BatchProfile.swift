import Foundation
import OpsDB

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

    /// Parses Slurm time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    /// Seconds round up to the next minute.
    public static func parseTimeLimit(_ text: String) -> Int? {
        var days = 0
        var rest = Substring(text)
        if let dash = rest.firstIndex(of: "-") {
            guard let d = Int(rest[..<dash]), d >= 0 else { return nil }
            days = d
            rest = rest[rest.index(after: dash)...]
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
            let values = parts.map { $0! }
            let hours = values[0], minutes = values.count > 1 ? values[1] : 0, seconds = values.count > 2 ? values[2] : 0
            let total = days * 1440 + hours * 60 + minutes + (seconds > 0 ? 1 : 0)
            return total > 0 ? total : nil
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        let values = parts.map { $0! }
        let total: Int
        switch values.count {
        case 1: total = values[0]
        case 2: total = values[0] + (values[1] > 0 ? 1 : 0)
        default: total = values[0] * 60 + values[1] + (values[2] > 0 ? 1 : 0)
        }
        return total > 0 ? total : nil
    }

    /// Parses sizes with a binary unit: `512M`, `4G`, `2T`, `1024K`, or a bare number of `defaultUnit`.
    public static func parseSize(_ text: String, defaultUnit: Int64) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10),
                                        ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let value = Int64(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0 else { return nil }
            return value.multipliedReportingOverflow(by: factor).overflow ? nil : value * factor
        }
        guard let value = Int64(trimmed), value > 0 else { return nil }
        return value.multipliedReportingOverflow(by: defaultUnit).overflow ? nil : value * defaultUnit
    }
}
