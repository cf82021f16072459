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
        top.allow(["sites", "batch", "required_archive_sites", "links"])
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
        let links = parseLinks(top, sites: Set(sites.map(\.shortName)), collector: collector)
        if !collector.issues.isEmpty { throw TopologyValidationError(issues: collector.issues) }
        return TopologySpec(sites: sites, defaults: defaults, requiredArchiveSites: requiredArchiveSites, links: links)
    }

    static func parseLinks(_ top: Fields, sites: Set<String>, collector: IssueCollector) -> [LinkSpec] {
        var links: [LinkSpec] = []
        var seen: Set<[String]> = []
        for (index, node) in (top.sequence("links") ?? []).enumerated() {
            let path = "links[\(index)]"
            guard let fields = Fields(node, path: path, collector: collector) else { continue }
            fields.allow(["from", "to", "min_active", "max_active", "windows"])
            guard let from = fields.string("from", required: true), let to = fields.string("to", required: true) else { continue }
            for (key, name) in [("from", from), ("to", to)] where !sites.contains(name) {
                collector.add(fields.node(key), fields.field(key), "'\(name)' is not a site of this file (\(sites.sorted().joined(separator: ", ")))")
            }
            if from == to { collector.add(node, path, "a link joins two different sites; '\(from)' names the same one twice") }
            let low = fields.int("min_active") ?? LinkConcurrency.defaultBounds.lowerBound
            let high = fields.int("max_active") ?? max(low, LinkConcurrency.defaultBounds.upperBound)
            if low < 1 { collector.add(fields.node("min_active"), fields.field("min_active"), "must be 1 or more (a link always runs at least one transfer job), got \(low)") }
            if high < low { collector.add(fields.node("max_active"), fields.field("max_active"), "must be at least min_active (\(low)), got \(high)") }
            if !seen.insert([from, to]).inserted { collector.add(node, path, "the link \(from) -> \(to) is named twice") }
            var windows: [LinkWindow] = []
            for (number, windowNode) in (fields.sequence("windows") ?? []).enumerated() {
                if let window = parseWindow(windowNode, path: "\(path).windows[\(number)]", collector: collector) { windows.append(window) }
            }
            links.append(LinkSpec(from: from, to: to, minActive: low, maxActive: max(low, high), windows: windows))
        }
        return links
    }

    /// `{from: "20:00", to: "08:00", timezone: America/Santiago, max_rate: 100Mbit/s}`.
    static func parseWindow(_ node: Node, path: String, collector: IssueCollector) -> LinkWindow? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        fields.allow(["from", "to", "timezone", "max_rate"])
        let start = fields.string("from", required: true), end = fields.string("to", required: true)
        let zone = fields.string("timezone", required: true), rate = fields.string("max_rate", required: true)
        guard let start, let end, let zone, let rate else { return nil }
        var ok = true
        for (key, text) in [("from", start), ("to", end)] where LinkWindow.minutes(text) == nil {
            collector.add(fields.node(key), fields.field(key), "expected a time of day as HH:MM (00:00 to 23:59), got '\(text)'")
            ok = false
        }
        if ok && start == end { collector.add(node, path, "the window starts and ends at \(start): it would be empty (or the whole day; leave the window out then)"); ok = false }
        if TimeZone(identifier: zone) == nil {
            collector.add(fields.node("timezone"), fields.field("timezone"), "unknown time zone '\(zone)'; use an IANA name such as America/Santiago or Europe/Berlin")
            ok = false
        }
        guard let bits = LinkWindow.bitsPerSecond(rate) else {
            collector.add(fields.node("max_rate"), fields.field("max_rate"), "expected a rate such as 100Mbit/s, 1Gbit/s or 50MB/s, got '\(rate)'")
            return nil
        }
        return ok ? LinkWindow(starts: start, ends: end, timezone: zone, maxBitsPerSecond: bits) : nil
    }

    static func isValidName(_ name: String) -> Bool {
        name.wholeMatch(of: /^[a-z][a-z0-9_]*$/) != nil
    }

    static func parseSite(_ node: Node, path: String, defaults: BatchProfile, collector: IssueCollector,
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

    static func parseLocation(_ node: Node, path: String, defaults: BatchProfile, collector: IssueCollector) -> LocationSpec? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        fields.allow(["name", "type", "storage", "priority", "active", "fill_threshold_percent", "retention", "description", "batch", "staging", "integrity"])
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
        var integrity = IntegrityPolicy()
        if let integrityNode = fields["integrity"] {
            if let type, type != .longTermArchive {
                collector.add(integrityNode, "\(path).integrity", "only LONG_TERM_ARCHIVE locations are fixity-checked and audited; remove 'integrity' here")
            }
            integrity = parseIntegrityPolicy(integrityNode, path: "\(path).integrity", collector: collector)
        }
        guard let name, let type, let storage else { return nil }
        return LocationSpec(name: name, type: type, storage: storage, priority: priority, active: active,
                            fillThresholdPercent: fill, retentionSeconds: retention, description: description,
                            batch: batch, operationBatch: overrides, staging: staging, sshHost: sshHost, integrity: integrity)
    }

    /// `integrity: {fixity_cycle: 90d, fixity_budget_per_day: 2TB, audit_every: 7d, brake_count: 100}`.
    static func parseIntegrityPolicy(_ node: Node, path: String, collector: IssueCollector) -> IntegrityPolicy {
        var policy = IntegrityPolicy()
        guard let fields = Fields(node, path: path, collector: collector) else { return policy }
        fields.allow(["fixity_cycle", "fixity_budget_per_day", "audit_every", "brake_count"])
        for (key, keyPath) in [("fixity_cycle", \IntegrityPolicy.fixityCycleSeconds), ("audit_every", \IntegrityPolicy.auditIntervalSeconds)] {
            guard let raw = fields.string(key) else { continue }
            if let seconds = parseDuration(raw), seconds > 0 {
                policy[keyPath: keyPath] = seconds
            } else {
                collector.add(fields[key], "\(path).\(key)", "'\(raw)' is not a duration above 0: use a number with s, m, h, d or w, e.g. 90d")
            }
        }
        if let raw = fields.scalarText("fixity_budget_per_day") {
            if let bytes = BatchProfile.parseSize(raw, defaultUnit: 1 << 30), bytes > 0 {
                policy.fixityBytesPerDay = bytes
            } else {
                collector.add(fields["fixity_budget_per_day"], "\(path).fixity_budget_per_day", "'\(raw)' is not a size: use a number with KB, MB, GB or TB, e.g. 2TB (a bare number is GB)")
            }
        }
        if let count = fields.int("brake_count") {
            if count >= 1 {
                policy.brakeCount = Int64(count)
            } else {
                collector.add(fields["brake_count"], "\(path).brake_count", "must be 1 or more (bad copies one pass may find before the location is suspect), got \(count)")
            }
        }
        return policy
    }

    /// `staging: {groups: [astro, ccat], quota_per_user: 10TB}` of a PROCESSING location.
    static func parseStagingPolicy(_ node: Node, path: String, collector: IssueCollector) -> StagingPolicySpec {
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

    /// `30d`, `12h`, `90m`, `45s`, `2w`, or `0`.
    /// Seconds, or nil for text that is not a duration or is longer than `maximumDurationSeconds`.
    public static func parseDuration(_ text: String) -> Int64? {
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
