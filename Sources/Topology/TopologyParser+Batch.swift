import OpsDB
import Yams

/// `batch:` blocks: a location's (or the file's default) submission profile and its per-operation
/// overrides, checked by the job-script renderer's own rules (SbatchRules).
extension TopologyParser {
    static let profileKeys = ["partition", "account", "qos", "time_limit", "cpus", "memory", "constraint", "nodelist",
                              "cluster", "extra", "max_queued_jobs", "max_operations_per_job", "max_bytes_per_job"]

    static func parseProfile(_ node: Node, path: String, collector: IssueCollector, allowOperations: Bool)
        -> (profile: BatchProfile, operations: [OperationType: (BatchProfile, Node)]) {
        var profile = BatchProfile()
        var operations: [OperationType: (BatchProfile, Node)] = [:]
        guard let fields = Fields(node, path: path, collector: collector) else { return (profile, operations) }
        fields.allow(profileKeys + (allowOperations ? ["operations"] : []))
        // The job-script renderer's own rules (SbatchRules): what passes here is never refused at
        // submission.
        func word(_ key: String) -> String? {
            guard let value = fields.string(key) else { return nil }
            if let problem = SbatchRules.valueProblem(value) {
                collector.add(fields[key], "\(path).\(key)", "'\(value.debugDescription.dropFirst().dropLast())' \(problem)")
                return nil
            }
            return value
        }
        profile.partition = word("partition")
        profile.account = word("account")
        profile.qos = word("qos")
        profile.cluster = word("cluster")
        profile.nodelist = word("nodelist")
        profile.constraint = word("constraint")
        if let raw = fields.scalarText("time_limit") {
            profile.timeLimitMinutes = BatchProfile.parseTimeLimit(raw)
            if profile.timeLimitMinutes == nil {
                collector.add(fields["time_limit"], "\(path).time_limit", "'\(raw)' is not a Slurm time limit (minutes, HH:MM:SS or D-HH:MM:SS, more than zero)")
            }
        }
        if let cpus = fields.int("cpus") {
            if cpus > 0 { profile.cpus = cpus } else { collector.add(fields["cpus"], "\(path).cpus", "must be 1 or more, got \(cpus)") }
        }
        if let raw = fields.scalarText("memory") {
            if let bytes = BatchProfile.parseSize(raw, defaultUnit: 1 << 20), bytes >= 1 << 20, bytes >> 20 <= Int64(Int32.max) {
                profile.memoryMB = Int(bytes >> 20)
            } else {
                collector.add(fields["memory"], "\(path).memory", "'\(raw)' is not a memory size (e.g. 4G, 512M, or a number of megabytes)")
            }
        }
        for (index, item) in (fields.sequence("extra") ?? []).enumerated() {
            let itemPath = "\(path).extra[\(index)]"
            guard let text = item.string, item.scalar != nil else {
                collector.add(item, itemPath, "must be a string like '--gres=none'")
                continue
            }
            if let problem = SbatchRules.extraProblem(text) {
                collector.add(item, itemPath, "'\(text.debugDescription.dropFirst().dropLast())' \(problem)")
            } else {
                profile.extra.append(text)
            }
        }
        if let value = fields.int("max_queued_jobs") {
            if value >= 0 { profile.maxQueuedJobs = value } else { collector.add(fields["max_queued_jobs"], "\(path).max_queued_jobs", "must be 0 or more, got \(value)") }
        }
        if let value = fields.int("max_operations_per_job") {
            if value > 0 { profile.maxOperationsPerJob = value } else { collector.add(fields["max_operations_per_job"], "\(path).max_operations_per_job", "must be 1 or more, got \(value)") }
        }
        if let raw = fields.scalarText("max_bytes_per_job") {
            if let bytes = BatchProfile.parseSize(raw, defaultUnit: 1) { profile.maxBytesPerJob = bytes } else {
                collector.add(fields["max_bytes_per_job"], "\(path).max_bytes_per_job", "'\(raw)' is not a size (e.g. 500G)")
            }
        }
        if allowOperations, let overrides = fields["operations"], let map = Fields(overrides, path: "\(path).operations", collector: collector) {
            for (key, value) in map.entries {
                guard let operation = OperationType(rawValue: key.uppercased()) else {
                    collector.add(value, "\(path).operations.\(key)", "unknown operation '\(key)' (known: \(OperationType.allCases.map(\.queueSuffix).joined(separator: ", ")))")
                    continue
                }
                let parsed = parseProfile(value, path: "\(path).operations.\(key)", collector: collector, allowOperations: false)
                operations[operation] = (parsed.profile, value)
            }
        }
        return (profile, operations)
    }
}
