import CCatCLI
import Foundation
import OpsDB

/// What `ccat stage request --dry-run` says a request would cost: its packages and where each
/// would be read from, the bytes, the scientist's quota before and after, and how long it would
/// take at the location's recent staging speed. Nothing is written.
struct StagingPlan: Encodable {
    struct Package: Encodable {
        var package: String?
        var observation: String
        var files: Int
        var bytes: Int64
        var archived: Bool
        /// Where it would be read from (the nearest archive), then the others that hold it.
        var archives: [PackageArchive]
    }
    struct Quota: Encodable {
        var limitBytes: Int64
        var heldBytes: Int64
        var afterBytes: Int64
        var exceeded: Bool
    }
    struct Estimate: Encodable {
        var bytesPerSecond: Double
        var seconds: Double
        var basedOnOperations: Int
    }

    var selection: StagingSelection
    var location: String
    var directory: String?
    var packages: [Package]
    var files: Int
    var bytes: Int64
    var notArchived: Int
    var quota: Quota?
    var estimate: Estimate?
    var notes: [String]
    var submitted = false

    static func make(_ selection: StagingSelection, into location: StagingLocation, user: String, selected: [SelectedPackage], bytes: Int64,
                     _ db: OpsDB) async throws -> StagingPlan {
        let archives = try await db.packageArchives(selected.compactMap(\.packageID), destination: location.id)
        let packages = selected.map { package in
            Package(package: package.package, observation: package.obsID, files: package.files, bytes: package.stagedBytes,
                    archived: package.isArchived, archives: package.packageID.flatMap { archives[$0] } ?? [])
        }
        var quota: Quota?
        if let limit = location.quotaBytesPerUser {
            let held = try await db.openStagingBytes(username: user, locationID: location.id)
            quota = Quota(limitBytes: limit, heldBytes: held, afterBytes: held + bytes, exceeded: held + bytes > limit)
        }
        let estimate = try await db.stagingThroughput(destination: location.id).map {
            Estimate(bytesPerSecond: $0.bytesPerSecond, seconds: Double(bytes) / $0.bytesPerSecond, basedOnOperations: $0.operations)
        }
        var notes: [String] = []
        if let forecast = try await StageRequest.archiveForecast(selected, db) { notes.append(forecast) }
        do {
            try await StageRequest.requireDaemon(db)
        } catch let error as CommandError {
            notes.append("a request now would be refused: \(error.description)")
        }
        return StagingPlan(selection: selection, location: "\(location.site).\(location.name)",
                           directory: location.rootPath.map { "\($0)/\(user)/<request id>" }, packages: packages,
                           files: selected.reduce(0) { $0 + $1.files }, bytes: bytes, notArchived: selected.filter { !$0.isArchived }.count, quota: quota,
                           estimate: estimate, notes: notes)
    }

    /// For people: a table of packages, then totals, quota, time and notes.
    func render() -> String {
        var lines = ["would stage \(selection.summary) into \(location)" + (directory.map { " at \($0)" } ?? "")]
        var table = TextTable(["PACKAGE", "OBSERVATION", "FILES", "SIZE", "FROM ARCHIVE", "ALSO AT"])
        for package in packages {
            let from = package.archives.first.map { "\($0.site).\($0.location)" } ?? (package.package == nil ? "(not packaged yet)" : "(not archived yet)")
            table.append([package.package ?? "-", package.observation, String(package.files), formatByteCount(package.bytes), from,
                          package.archives.dropFirst().map { "\($0.site).\($0.location)" }.joined(separator: ",")])
        }
        lines.append(table.render())
        lines.append("total: \(packages.count) package\(packages.count == 1 ? "" : "s"), \(files) files, \(formatByteCount(bytes))"
                     + (notArchived > 0 ? "; \(notArchived) not archived yet" : ""))
        if let quota {
            lines.append("quota at \(location): \(formatByteCount(quota.heldBytes)) of \(formatByteCount(quota.limitBytes)) held now, "
                         + "\(formatByteCount(quota.afterBytes)) with this request" + (quota.exceeded ? ": OVER QUOTA, the request would be refused" : ""))
        } else {
            lines.append("quota at \(location): none")
        }
        if let estimate {
            lines.append("estimated staging time: \(StagingProgressLine.duration(estimate.seconds)) at \(formatByteCount(Int64(estimate.bytesPerSecond)))/s "
                         + "(the last \(estimate.basedOnOperations) staging operation\(estimate.basedOnOperations == 1 ? "" : "s") here)")
        } else {
            lines.append("estimated staging time: unknown (nothing was staged into \(location) in the last 30 days)")
        }
        lines += notes.map { "note: \($0)" }
        lines.append("nothing was submitted (--dry-run)")
        return lines.joined(separator: "\n")
    }
}
