import Foundation
import OpsDB
import Yams

/// One problem in a topology file.
public struct TopologyIssue: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    /// Where in the document, e.g. `sites[1].locations[0].storage.s3.bucket`.
    public var field: String
    public var message: String

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(field.isEmpty ? "" : "\(field): ")\(message)"
    }
}

/// A topology file that failed validation. Nothing was written.
public struct TopologyValidationError: Error, Sendable, CustomStringConvertible {
    /// In file order.
    public var issues: [TopologyIssue]

    public init(issues: [TopologyIssue]) {
        self.issues = issues.enumerated().sorted { ($0.element.line ?? 0, $0.offset) < ($1.element.line ?? 0, $1.offset) }.map(\.element)
    }

    public var description: String {
        let count = issues.count == 1 ? "1 problem" : "\(issues.count) problems"
        return "\(count) in the topology file; nothing was changed:\n" + issues.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// Reads and validates topology files (YAML). Every problem found is reported, each with the file,
/// line and field, and what is allowed.
public enum TopologyParser {
    public static func parse(contentsOf path: String) throws -> TopologySpec {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TopologyValidationError(issues: [TopologyIssue(file: path, line: nil, field: "", message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws -> TopologySpec {
        let collector = IssueCollector(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw TopologyValidationError(issues: [TopologyIssue(file: file, line: yamlLine(error), field: "", message: "not valid YAML: \(error)")])
        }
        if let root, expandedSize(root, budget: maximumNodes) > maximumNodes {
            throw TopologyValidationError(issues: [TopologyIssue(file: file, line: nil, field: "", message: "the file expands to more than \(maximumNodes) values once its aliases are resolved; a topology needs far fewer (are aliases nested inside each other?)")])
        }
        guard let root, let top = Fields(root, path: "", collector: collector) else {
            if root == nil { collector.add(nil, "", "the file is empty; it needs a 'sites' list") }
            throw TopologyValidationError(issues: collector.issues)
        }
        top.allow(["sites", "batch", "required_archive_sites"])
        let requiredArchiveSites = top.int("required_archive_sites")
        if let requiredArchiveSites, requiredArchiveSites < 1 {
            collector.add(top["required_archive_sites"], "required_archive_sites", "must be 1 or more (the number of sites that must hold a verified archive copy before temporary copies are deleted), got \(requiredArchiveSites)")
        }
        var defaults = BatchProfile()
        if let batch = top["batch"] {
            defaults = parseProfile(batch, path: "batch", collector: collector, allowOperations: false).profile
        }
        var sites: [SiteSpec] = []
        var seenSites: [String: Int] = [:]
        var placed: [PlacedLocation] = []
        if let list = top.sequence("sites", required: true) {
            for (index, node) in list.enumerated() {
                let path = "sites[\(index)]"
                guard let site = parseSite(node, path: path, defaults: defaults, collector: collector, placed: &placed) else { continue }
                if let first = seenSites[site.shortName] {
                    collector.add(node, "\(path).short_name", "duplicate site short name '\(site.shortName)' (first declared on line \(first)); short names must be unique")
                } else {
                    seenSites[site.shortName] = node.mark?.line ?? 0
                }
                sites.append(site)
            }
        }
        checkOverlaps(placed, collector: collector)
        if let requiredArchiveSites {
            let archiveSites = sites.filter { $0.locations.contains { $0.type == .longTermArchive && $0.active } }.count
            if requiredArchiveSites > archiveSites {
                collector.add(top["required_archive_sites"], "required_archive_sites", "\(requiredArchiveSites) archive sites are required but only \(archiveSites) site\(archiveSites == 1 ? " has" : "s have") an active long-term archive: nothing could ever be deleted")
            }
        }
        if !collector.issues.isEmpty { throw TopologyValidationError(issues: collector.issues) }
        return TopologySpec(sites: sites, defaults: defaults, requiredArchiveSites: requiredArchiveSites)
    }

    static func isValidName(_ name: String) -> Bool {
        name.wholeMatch(of: /^[a-z][a-z0-9_]*$/) != nil
    }

    /// A parsed location with where it was declared, for checks across locations.
    struct PlacedLocation {
        var site: String
        var spec: LocationSpec
        var node: Node
        var path: String
        var name: String { "\(site):\(spec.name)" }
        var storageNode: Node { node.mapping?["storage"] ?? node }
    }

    /// No two locations may share storage (StorageOverlap says why); each clash names both.
    static func checkOverlaps(_ placed: [PlacedLocation], collector: IssueCollector) {
        for (index, later) in placed.enumerated() {
            for earlier in placed[..<index] {
                let a = StorageOverlap.Place(site: earlier.site, storage: earlier.spec.storage, host: earlier.spec.sshHost)
                let b = StorageOverlap.Place(site: later.site, storage: later.spec.storage, host: later.spec.sshHost)
                guard let how = StorageOverlap.overlap(a, b) else { continue }
                collector.add(later.storageNode, "\(later.path).storage",
                              "'\(later.name)' and '\(earlier.name)' (line \(earlier.storageNode.mark?.line ?? 0), \(earlier.path)) share storage: \(how). Cleaning one would delete the other's files; give every location a root of its own, neither inside the other")
            }
        }
    }

    private static func parseSite(_ node: Node, path: String, defaults: BatchProfile, collector: IssueCollector,
                                  placed: inout [PlacedLocation]) -> SiteSpec? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        fields.allow(["short_name", "name", "location", "locations"])
        let shortName = fields.string("short_name", required: true)
        if let shortName, !isValidName(shortName) || shortName.count > 32 {
            collector.add(fields["short_name"], "\(path).short_name", "'\(shortName)' is not a valid short name: use 1-32 lower-case letters, digits and '_', starting with a letter (it becomes part of queue names)")
        }
        let name = fields.string("name", required: true)
        let location = fields.string("location")
        var locations: [LocationSpec] = []
        var declared: [(spec: LocationSpec, node: Node, path: String)] = []
        var seen: [String: Int] = [:]
        for (index, locationNode) in (fields.sequence("locations") ?? []).enumerated() {
            let locationPath = "\(path).locations[\(index)]"
            guard let spec = parseLocation(locationNode, path: locationPath, defaults: defaults, collector: collector) else { continue }
            declared.append((spec, locationNode, locationPath))
            if let first = seen[spec.name] {
                collector.add(locationNode, "\(locationPath).name", "duplicate location name '\(spec.name)' at site '\(shortName ?? "?")' (first declared on line \(first))")
            } else {
                seen[spec.name] = locationNode.mark?.line ?? 0
            }
            if spec.type == .buffer, spec.active,
               let clash = locations.first(where: { $0.type == .buffer && $0.active && $0.priority == spec.priority }) {
                collector.add(locationNode, "\(locationPath).priority", "active buffers '\(clash.name)' and '\(spec.name)' both have priority \(spec.priority); give each buffer of a site its own priority so failover order is defined")
            }
            locations.append(spec)
        }
        guard let shortName, let name else { return nil }
        placed += declared.map { PlacedLocation(site: shortName, spec: $0.spec, node: $0.node, path: $0.path) }
        return SiteSpec(shortName: shortName, name: name, location: location, locations: locations)
    }

    private static func parseLocation(_ node: Node, path: String, defaults: BatchProfile, collector: IssueCollector) -> LocationSpec? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        fields.allow(["name", "type", "storage", "priority", "active", "fill_threshold_percent", "retention", "description", "batch", "staging"])
        let name = fields.string("name", required: true)
        if let name, !isValidName(name) || name.count > 63 {
            collector.add(fields["name"], "\(path).name", "'\(name)' is not a valid location name: use lower-case letters, digits and '_', starting with a letter (it becomes part of queue names)")
        }
        var type: LocationType?
        if let raw = fields.string("type", required: true) {
            type = LocationType(rawValue: raw.uppercased())
            if type == nil {
                collector.add(fields["type"], "\(path).type", "unknown location type '\(raw)' (allowed: \(LocationType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        let priority = fields.int("priority") ?? 1
        if priority < 0 {
            collector.add(fields["priority"], "\(path).priority", "priority must be 0 or more (lower numbers are used first), got \(priority)")
        }
        let active = fields.bool("active") ?? true
        let fill = fields.int("fill_threshold_percent") ?? 90
        if !(1...100).contains(fill) {
            collector.add(fields["fill_threshold_percent"], "\(path).fill_threshold_percent", "must be between 1 and 100, got \(fill)")
        }
        var retention: Int64?
        if let raw = fields.string("retention") {
            retention = parseDuration(raw)
            if retention == nil {
                collector.add(fields["retention"], "\(path).retention", "'\(raw)' is not a duration: use a number with s, m, h, d or w, e.g. 30d")
            }
        }
        let description = fields.string("description")
        var storage: LocationStorage?
        var sshHost: String?
        if let storageNode = fields.node("storage", required: true) {
            storage = parseStorage(storageNode, path: "\(path).storage", collector: collector)
            sshHost = parseSSHHost(storageNode, path: "\(path).storage.disk.host", collector: collector)
        }
        if let type, let storage, !OperationMatrix.supportedStorage(for: type).contains(storage.storageType) {
            collector.add(fields["storage"], "\(path).storage", "\(type.rawValue) locations cannot use \(storage.storageType.rawValue) storage in this version (supported: \(OperationMatrix.supportedStorage(for: type).map(\.rawValue).joined(separator: ", ")))")
        }
        var batch = defaults
        var overrides: [OperationType: BatchProfile] = [:]
        if let batchNode = fields["batch"] {
            let parsed = parseProfile(batchNode, path: "\(path).batch", collector: collector, allowOperations: true)
            batch = defaults.overlaid(with: parsed.profile)
            for (operation, (profile, keyNode)) in parsed.operations {
                if let type, !OperationMatrix.operations(for: type).contains(operation) {
                    collector.add(keyNode, "\(path).batch.operations.\(operation.queueSuffix)", "\(operation.queueSuffix) does not run at \(type.rawValue) locations, so it has no queue here (\(type.rawValue) queues: \(OperationMatrix.operations(for: type).map(\.queueSuffix).joined(separator: ", ")))")
                }
                overrides[operation] = profile
            }
        }
        var staging = StagingPolicySpec()
        if let stagingNode = fields["staging"] {
            if let type, type != .processing {
                collector.add(stagingNode, "\(path).staging", "only PROCESSING locations take staging requests; remove 'staging' here")
            }
            staging = parseStagingPolicy(stagingNode, path: "\(path).staging", collector: collector)
        }
        guard let name, let type, let storage else { return nil }
        return LocationSpec(name: name, type: type, storage: storage, priority: priority, active: active,
                            fillThresholdPercent: fill, retentionSeconds: retention, description: description,
                            batch: batch, operationBatch: overrides, staging: staging, sshHost: sshHost)
    }

    /// `storage: {disk: {root: ..., host: dtn.example.org}}`: where rsync reaches the path over ssh.
    private static func parseSSHHost(_ storage: Node, path: String, collector: IssueCollector) -> String? {
        guard let node = storage.mapping?["disk"]?.mapping?["host"] else { return nil }
        guard let host = node.string, host.wholeMatch(of: /^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/) != nil, host.count <= 255 else {
            collector.add(node, path, "expected an ssh destination: a host name, user@host or an alias of the runner's ssh configuration")
            return nil
        }
        return host
    }

    /// `staging: {groups: [astro, ccat], quota_per_user: 10TB}` of a PROCESSING location.
    private static func parseStagingPolicy(_ node: Node, path: String, collector: IssueCollector) -> StagingPolicySpec {
        guard let fields = Fields(node, path: path, collector: collector) else { return StagingPolicySpec() }
        fields.allow(["groups", "quota_per_user"])
        var policy = StagingPolicySpec()
        for item in fields.sequence("groups") ?? [] {
            guard let group = item.string, !group.isEmpty, item.scalar != nil else {
                collector.add(item, "\(path).groups", "expected unix group names")
                continue
            }
            if !policy.groups.contains(group) { policy.groups.append(group) }
        }
        if let raw = fields.scalarText("quota_per_user") {
            if let bytes = BatchProfile.parseSize(raw, defaultUnit: 1 << 30), bytes > 0 {
                policy.quotaBytesPerUser = bytes
            } else {
                collector.add(fields["quota_per_user"], "\(path).quota_per_user", "'\(raw)' is not a size: use a number with KB, MB, GB or TB, e.g. 10TB (a bare number is GB)")
            }
        }
        return policy
    }

    private static func parseStorage(_ node: Node, path: String, collector: IssueCollector) -> LocationStorage? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        let kinds = ["disk", "s3", "tape"]
        fields.allow(kinds)
        let present = kinds.filter { fields[$0] != nil }
        guard present.count == 1, let kind = present.first, let body = fields[kind] else {
            collector.add(node, path, "give exactly one of disk, s3 or tape (found: \(present.isEmpty ? "none" : present.joined(separator: ", ")))")
            return nil
        }
        let subpath = "\(path).\(kind)"
        guard let spec = Fields(body, path: subpath, collector: collector) else { return nil }
        switch kind {
        case "disk":
            spec.allow(["root", "host"])
            guard let root = spec.string("root", required: true) else { return nil }
            if !root.hasPrefix("/") || root.split(separator: "/").contains("..") {
                collector.add(spec["root"], "\(subpath).root", "must be an absolute path without '..', got '\(root)'")
                return nil
            }
            if root.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) {
                collector.add(spec["root"], "\(subpath).root", "contains a control character (newline, tab, ...): \(root.debugDescription)")
                return nil
            }
            if StorageOverlap.components(root).isEmpty {
                collector.add(spec["root"], "\(subpath).root", "'/' cannot be a location's root: give the directory that holds only this location's files")
                return nil
            }
            return .disk(rootPath: root)
        case "s3":
            spec.allow(["endpoint", "bucket", "region", "prefix", "credentials", "path_style"])
            let endpoint = spec.string("endpoint", required: true)
            if let endpoint, let components = URLComponents(string: endpoint), components.user != nil || components.password != nil {
                // Never printed back: the text holds a secret.
                collector.add(spec["endpoint"], "\(subpath).endpoint", "must not carry credentials (user:password@); keys are read from 'credentials: env:...' or 'file:...', never from the topology file")
                return nil
            }
            if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) || endpoint.contains(where: { $0.isWhitespace }) {
                collector.add(spec["endpoint"], "\(subpath).endpoint", "must be an http:// or https:// URL, got '\(String(endpoint.prefix(200)))'")
            }
            let bucket = spec.string("bucket", required: true)
            if let bucket, bucket.wholeMatch(of: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/) == nil {
                collector.add(spec["bucket"], "\(subpath).bucket", "'\(bucket)' is not a valid S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
            }
            let region = spec.string("region") ?? "us-east-1"
            let prefix = spec.string("prefix") ?? ""
            if prefix.hasPrefix("/") {
                collector.add(spec["prefix"], "\(subpath).prefix", "must not start with '/'")
            }
            let credentials = spec.string("credentials", required: true)
            if let credentials, credentials.wholeMatch(of: /^env:[A-Za-z_][A-Za-z0-9_]*$/) == nil && credentials.wholeMatch(of: /^file:\/.+$/) == nil {
                collector.add(spec["credentials"], "\(subpath).credentials", "say where the keys are read from, 'env:VARIABLE_PREFIX' or 'file:/absolute/path'; never put keys in the topology file")
            }
            let pathStyle = spec.bool("path_style") ?? true
            guard let endpoint, let bucket, let credentials else { return nil }
            return .s3(endpointURL: endpoint, bucket: bucket, region: region, prefix: prefix, credentialsSource: credentials, pathStyle: pathStyle)
        default:
            spec.allow(["library", "pool"])
            guard let library = spec.string("library", required: true) else { return nil }
            return .tape(library: library, pool: spec.string("pool"))
        }
    }

    static let profileKeys = ["partition", "account", "qos", "time_limit", "cpus", "memory", "constraint", "nodelist",
                              "cluster", "extra", "max_queued_jobs", "max_operations_per_job", "max_bytes_per_job"]

    private static func parseProfile(_ node: Node, path: String, collector: IssueCollector, allowOperations: Bool)
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

    /// `30d`, `12h`, `90m`, `45s`, `2w`, or `0`.
    /// Seconds, or nil for text that is not a duration or is longer than `maximumDurationSeconds`.
    static func parseDuration(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        guard let unit = text.last, let value = Int64(text.dropLast()), value >= 0 else { return nil }
        let factor: Int64
        switch unit {
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86_400
        case "w": factor = 604_800
        default: return nil
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: factor)
        return overflow || seconds > maximumDurationSeconds ? nil : seconds
    }

    /// A hundred years: more than any retention an observatory keeps, far below every limit.
    static let maximumDurationSeconds: Int64 = 100 * 366 * 86_400

    /// Nodes a topology file may expand to once its aliases are resolved: a real file has a few
    /// hundred; a file that multiplies blocks through nested aliases is refused before validation
    /// walks it.
    static let maximumNodes = 100_000

    /// Counts the nodes of the document with aliases expanded, stopping once past `budget`.
    static func expandedSize(_ node: Node, budget: Int) -> Int {
        var count = 0
        var stack = [node]
        while let next = stack.popLast() {
            count += 1
            if count > budget { return count }
            switch next {
            case .mapping(let mapping):
                for (key, value) in mapping { stack.append(key); stack.append(value) }
            case .sequence(let sequence):
                stack.append(contentsOf: sequence)
            default:
                break
            }
        }
        return count
    }

    private static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }
}

final class IssueCollector {
    let file: String
    var issues: [TopologyIssue] = []
    init(file: String) { self.file = file }
    func add(_ node: Node?, _ field: String, _ message: String) {
        issues.append(TopologyIssue(file: file, line: node?.mark?.line, field: field, message: message))
    }
}

/// A YAML mapping being read: typed getters that report wrong types, and a check for unknown keys.
final class Fields {
    let node: Node
    let path: String
    let collector: IssueCollector
    let entries: [(String, Node)]

    init?(_ node: Node, path: String, collector: IssueCollector) {
        guard let mapping = node.mapping else {
            collector.add(node, path, "expected a mapping of keys to values")
            return nil
        }
        self.node = node
        self.path = path
        self.collector = collector
        var entries: [(String, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                collector.add(key, path, "keys must be strings")
                continue
            }
            entries.append((name, value))
        }
        self.entries = entries
    }

    subscript(key: String) -> Node? { entries.first { $0.0 == key }?.1 }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allow(_ known: [String]) {
        for (key, value) in entries where !known.contains(key) {
            collector.add(value, field(key), "unknown key '\(key)' (allowed here: \(known.joined(separator: ", ")))")
        }
    }

    func node(_ key: String, required: Bool = false) -> Node? {
        guard let value = self[key] else {
            if required { collector.add(node, field(key), "missing; this field is required") }
            return nil
        }
        if case .scalar(let scalar) = value, scalar.tag == Tag(.null) {
            if required { collector.add(value, field(key), "must not be empty") }
            return nil
        }
        return value
    }

    /// A scalar's text whatever its YAML type (for values like `time_limit: 90` or `"1:00:00"`).
    func scalarText(_ key: String) -> String? {
        guard let value = node(key) else { return nil }
        guard let scalar = value.scalar else {
            collector.add(value, field(key), "expected a single value")
            return nil
        }
        return scalar.string
    }

    func string(_ key: String, required: Bool = false) -> String? {
        guard let value = node(key, required: required) else { return nil }
        guard let scalar = value.scalar, scalar.tag == Tag(.str) || value.int == nil && value.bool == nil else {
            collector.add(value, field(key), "expected text")
            return nil
        }
        return scalar.string
    }

    /// A whole number the database's integer columns can hold.
    func int(_ key: String) -> Int? {
        guard let value = node(key) else { return nil }
        guard let number = value.int else {
            collector.add(value, field(key), "expected a whole number, got '\(String((value.string ?? "a structure").prefix(40)))'")
            return nil
        }
        guard Int(Int32.min)...Int(Int32.max) ~= number else {
            collector.add(value, field(key), "\(number) is too large (at most \(Int32.max))")
            return nil
        }
        return number
    }

    func bool(_ key: String) -> Bool? {
        guard let value = node(key) else { return nil }
        guard let flag = value.bool else {
            collector.add(value, field(key), "expected true or false, got '\(value.string ?? "a structure")'")
            return nil
        }
        return flag
    }

    func sequence(_ key: String, required: Bool = false) -> [Node]? {
        guard let value = node(key, required: required) else { return nil }
        guard let items = value.sequence else {
            collector.add(value, field(key), "expected a list")
            return nil
        }
        return Array(items)
    }
}
