import Foundation
import Logging
import OpsDB
import Postgres

/// What `ccat topology apply` did (or, with `--dry-run`, would do).
public struct TopologyChanges: Codable, Sendable, Equatable {
    public var created: [String] = []
    public var changed: [String] = []
    public var unchanged: [String] = []
    public var deactivated: [String] = []
    public var deleted: [String] = []

    public var isEmpty: Bool { created.isEmpty && changed.isEmpty && deactivated.isEmpty && deleted.isEmpty }
}

/// The topology change cannot be made without losing track of data. Nothing was written.
public struct TopologyConflict: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Brings the database in line with a topology file, in one transaction.
///
/// Sites and locations are matched by short name and by (site, name). A location missing from the
/// file is deleted only if nothing refers to it; one that holds data or history is deactivated
/// instead, and the report says so. Storage of a location that holds data cannot be changed here.
public struct TopologySync: Sendable {
    public let logger: Logger

    public init(logger: Logger = Logger(label: "ccat.topology")) {
        self.logger = logger
    }

    public func apply(_ spec: TopologySpec, to connection: PostgresConnection, dryRun: Bool = false) async throws -> TopologyChanges {
        do {
            return try await connection.transaction { tx in
                try await OpsDB(tx).lockTopologyForTransaction()
                let changes = try await sync(spec, OpsDB(tx))
                if dryRun { throw DryRun(changes: changes) }
                if !changes.isEmpty { try await OpsDB(tx).notifyWork("topology changed") }
                return changes
            }
        } catch let dryRun as DryRun {
            return dryRun.changes
        }
    }

    private struct DryRun: Error { var changes: TopologyChanges }

    private func sync(_ spec: TopologySpec, _ db: OpsDB) async throws -> TopologyChanges {
        var changes = TopologyChanges()
        let required = try await db.requiredArchiveSites()
        if required != spec.requiredArchiveSites {
            try await db.setRequiredArchiveSites(spec.requiredArchiveSites)
            changes.changed.append("required archive sites \(required.map(String.init) ?? "all") -> \(spec.requiredArchiveSites.map(String.init) ?? "all")")
        }
        let existingSites = Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.shortName, $0) })
        let existingLocations = try await db.locations()
        var keptLocationIDs = Set<Int64>()

        for siteSpec in spec.sites {
            let site: Site
            if let current = existingSites[siteSpec.shortName] {
                site = current
                var differences: [String] = []
                if current.name != siteSpec.name { differences.append("name '\(current.name)' -> '\(siteSpec.name)'") }
                if current.location != siteSpec.location { differences.append("location '\(current.location ?? "")' -> '\(siteSpec.location ?? "")'") }
                if differences.isEmpty {
                    changes.unchanged.append("site \(siteSpec.shortName)")
                } else {
                    try await db.updateSite(id: current.id, name: siteSpec.name, location: siteSpec.location)
                    changes.changed.append("site \(siteSpec.shortName): \(differences.joined(separator: ", "))")
                }
            } else {
                site = try await db.insertSite(name: siteSpec.name, shortName: siteSpec.shortName, location: siteSpec.location)
                changes.created.append("site \(siteSpec.shortName)")
            }

            for locationSpec in siteSpec.locations {
                let label = "location \(siteSpec.shortName).\(locationSpec.name)"
                if let current = existingLocations.first(where: { $0.siteID == site.id && $0.name == locationSpec.name }) {
                    keptLocationIDs.insert(current.id)
                    let differences = try await update(current, to: locationSpec, label: label, db)
                    if differences.isEmpty {
                        changes.unchanged.append(label)
                    } else {
                        changes.changed.append("\(label): \(differences.joined(separator: ", "))")
                    }
                } else {
                    let created = try await db.insertLocation(
                        siteID: site.id, name: locationSpec.name, type: locationSpec.type, storage: locationSpec.storage,
                        priority: locationSpec.priority, active: locationSpec.active,
                        fillThresholdPercent: locationSpec.fillThresholdPercent, retentionSeconds: locationSpec.retentionSeconds,
                        description: locationSpec.description)
                    _ = try await syncProfiles(locationID: created.id, spec: locationSpec, db)
                    if let host = locationSpec.sshHost { try await db.setSSHHost(locationID: created.id, host) }
                    if locationSpec.type == .processing {
                        try await db.setProcessingPolicy(locationID: created.id, groups: locationSpec.staging.groups,
                                                         quotaBytesPerUser: locationSpec.staging.quotaBytesPerUser)
                    }
                    if locationSpec.type == .longTermArchive { try await db.setIntegrityPolicy(locationID: created.id, locationSpec.integrity) }
                    keptLocationIDs.insert(created.id)
                    changes.created.append(label)
                }
            }
        }

        // Locations no longer in the file.
        let siteNames = Dictionary(uniqueKeysWithValues: existingSites.values.map { ($0.id, $0.shortName) })
        for location in existingLocations where !keptLocationIDs.contains(location.id) {
            let label = "location \(siteNames[location.siteID] ?? "?").\(location.name)"
            let usage = try await db.locationUsage(id: location.id)
            if usage.liveCopies > 0 || usage.references > 0 {
                if location.active {
                    try await db.deactivateLocation(id: location.id)
                    let why = usage.liveCopies > 0 ? "it still holds \(usage.liveCopies) cop\(usage.liveCopies == 1 ? "y" : "ies")" : "its history is kept"
                    changes.deactivated.append("\(label): not in the file; deactivated, not deleted, because \(why)")
                } else {
                    changes.unchanged.append("\(label) (not in the file; stays inactive because it is referenced)")
                }
            } else {
                try await db.deleteLocation(id: location.id)
                changes.deleted.append(label)
            }
        }
        // Sites no longer in the file, once they have no locations left.
        let declared = Set(spec.sites.map(\.shortName))
        for site in existingSites.values.sorted(by: { $0.shortName < $1.shortName }) where !declared.contains(site.shortName) {
            let left = try await db.deleteSiteIfUnused(id: site.id)
            if left.locations == 0 && left.routes == 0 {
                changes.deleted.append("site \(site.shortName)")
            } else {
                changes.unchanged.append("site \(site.shortName) (not in the file; kept because \(left.locations > 0 ? "it still has locations" : "routes refer to it"))")
            }
        }
        try await syncLinks(spec, db, changes: &changes)
        return changes
    }

    /// Updates a location in place; returns what changed.
    private func update(_ current: DataLocation, to spec: LocationSpec, label: String, _ db: OpsDB) async throws -> [String] {
        var differences: [String] = []
        if current.locationType != spec.type {
            let usage = try await db.locationUsage(id: current.id)
            guard usage.references == 0 && usage.liveCopies == 0 else {
                throw TopologyConflict(description: "\(label): cannot change type \(current.locationType.rawValue) -> \(spec.type.rawValue) while the location is in use; add a new location instead")
            }
            differences.append("type \(current.locationType.rawValue) -> \(spec.type.rawValue)")
        }
        if current.priority != spec.priority { differences.append("priority \(current.priority) -> \(spec.priority)") }
        if current.active != spec.active { differences.append(spec.active ? "activated" : "deactivated") }
        if current.fillThresholdPercent != spec.fillThresholdPercent {
            differences.append("fill threshold \(current.fillThresholdPercent)% -> \(spec.fillThresholdPercent)%")
        }
        if current.retentionSeconds != spec.retentionSeconds {
            differences.append("retention \(current.retentionSeconds.map { "\($0)s" } ?? "default") -> \(spec.retentionSeconds.map { "\($0)s" } ?? "default")")
        }
        if current.description != spec.description { differences.append("description") }
        if case .disk = spec.storage, try await db.sshHost(of: current.id) != spec.sshHost {
            differences.append("ssh host \(try await db.sshHost(of: current.id) ?? "none") -> \(spec.sshHost ?? "none")")
            try await db.setSSHHost(locationID: current.id, spec.sshHost)
        }
        if spec.type == .processing {
            let policy = try await db.processingPolicy(locationID: current.id)
            if policy.groups != spec.staging.groups || policy.quotaBytesPerUser != spec.staging.quotaBytesPerUser {
                differences.append("staging groups [\(policy.groups.joined(separator: ", "))] -> [\(spec.staging.groups.joined(separator: ", "))]"
                                   + (policy.quotaBytesPerUser != spec.staging.quotaBytesPerUser ? ", quota per user changed" : ""))
                try await db.setProcessingPolicy(locationID: current.id, groups: spec.staging.groups, quotaBytesPerUser: spec.staging.quotaBytesPerUser)
            }
        }
        if spec.type == .longTermArchive, try await db.integrityPolicy(locationID: current.id) != spec.integrity {
            differences.append("integrity settings")
            try await db.setIntegrityPolicy(locationID: current.id, spec.integrity)
        }
        if !differences.isEmpty {
            try await db.updateLocation(id: current.id, type: spec.type, priority: spec.priority, active: spec.active,
                                        fillThresholdPercent: spec.fillThresholdPercent, retentionSeconds: spec.retentionSeconds,
                                        description: spec.description)
        }
        let storage = try await db.storage(of: current)
        if storage != spec.storage {
            let usage = try await db.locationUsage(id: current.id)
            guard usage.liveCopies == 0 else {
                throw TopologyConflict(description: "\(label): cannot change its storage while it holds \(usage.liveCopies) cop\(usage.liveCopies == 1 ? "y" : "ies") recorded at the old place; move the data and its records first, or add a new location")
            }
            try await db.replaceStorage(locationID: current.id, with: spec.storage)
            differences.append("storage \(describe(storage)) -> \(describe(spec.storage))")
        }
        differences += try await syncProfiles(locationID: current.id, spec: spec, db)
        return differences
    }

    private func syncProfiles(locationID: Int64, spec: LocationSpec, _ db: OpsDB) async throws -> [String] {
        let current = try await db.submissionProfiles(locationID: locationID)
        var differences: [String] = []
        var desired: [OperationType?: BatchProfile] = [nil: spec.batch]
        for (operation, profile) in spec.operationBatch { desired[operation] = profile }
        for (operation, profile) in desired where current[operation] != profile {
            try await db.upsertSubmissionProfile(locationID: locationID, operation: operation, profile: profile)
            differences.append(operation.map { "batch settings for \($0.queueSuffix)" } ?? "batch settings")
        }
        for operation in current.keys where desired[operation] == nil {
            try await db.deleteSubmissionProfile(locationID: locationID, operation: operation)
            differences.append("batch override for \(operation?.queueSuffix ?? "?") removed")
        }
        return differences.sorted()
    }

    private func describe(_ storage: LocationStorage) -> String {
        switch storage {
        case .disk(let root): return "disk \(root)"
        case .s3(let endpoint, let bucket, _, let prefix, _, _): return "s3 \(endpoint)/\(bucket)/\(prefix)"
        case .tape(let library, _): return "tape \(library)"
        }
    }
}

extension TopologySync {
    /// The file's `links:` bounds; a link the file no longer names returns to the defaults.
    func syncLinks(_ spec: TopologySpec, _ db: OpsDB, changes: inout TopologyChanges) async throws {
        let siteIDs = Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.shortName, $0.id) })
        let current = try await db.configuredLinks()
        var wanted: [[Int64]: ClosedRange<Int>] = [:]
        for link in spec.links {
            guard let from = siteIDs[link.from], let to = siteIDs[link.to] else { continue }
            wanted[[from, to]] = link.minActive...link.maxActive
        }
        let names = Dictionary(uniqueKeysWithValues: siteIDs.map { ($0.value, $0.key) })
        func name(_ key: [Int64]) -> String { "link \(names[key[0]] ?? "?") -> \(names[key[1]] ?? "?")" }
        for (key, bounds) in wanted.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let before = current.first { [$0.origin, $0.destination] == key }?.bounds
            if before == bounds {
                changes.unchanged.append(name(key))
                continue
            }
            try await db.setLinkBounds(originSiteID: key[0], destinationSiteID: key[1], bounds: bounds)
            let shown = "\(bounds.lowerBound)-\(bounds.upperBound) transfer jobs"
            if let before { changes.changed.append("\(name(key)): \(before.lowerBound)-\(before.upperBound) -> \(shown)") } else { changes.created.append("\(name(key)) (\(shown))") }
        }
        for link in current where wanted[[link.origin, link.destination]] == nil {
            try await db.setLinkBounds(originSiteID: link.origin, destinationSiteID: link.destination, bounds: nil)
            changes.changed.append("\(name([link.origin, link.destination])): back to the default bounds")
        }
        // Bandwidth windows: the file's, link by link; a link the file no longer gives windows loses them.
        var windows: [[Int64]: [LinkWindow]] = [:]
        for link in spec.links {
            guard let from = siteIDs[link.from], let to = siteIDs[link.to], !link.windows.isEmpty else { continue }
            windows[[from, to]] = link.windows
        }
        let withWindows = try await db.linksWithWindows().map { [$0.origin, $0.destination] }
        for key in Set(withWindows).union(windows.keys).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let before = try await db.linkWindows(originSiteID: key[0], destinationSiteID: key[1])
            let after = windows[key] ?? []
            guard before != after else { continue }
            try await db.setLinkWindows(originSiteID: key[0], destinationSiteID: key[1], windows: after)
            let shown = after.isEmpty ? "no bandwidth window" : after.map(\.summary).joined(separator: ", ")
            changes.changed.append("\(name(key)): \(before.isEmpty ? "no bandwidth window" : before.map(\.summary).joined(separator: ", ")) -> \(shown)")
        }
    }
}

