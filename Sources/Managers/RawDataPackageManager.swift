import Foundation
import Logging
import OpsDB
import Topology

/// 1. New files at SOURCE locations -> raw data packages, one per observation and location, and a
/// RAW_DATA_PACKAGE_CREATION operation writing into the site's primary buffer.
public struct RawDataPackageManager: ManagerCycle {
    public let name = "raw-data-package-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let places = work.places
        var created = 0
        // Observations set aside are left out of the query, so that they never fill its batch.
        let skipped = work.setAside.items.compactMap { ObservationItem(parsing: $0, places: places) }
        for group in try await db.unpackagedGroups(settleSeconds: settings.packageSettleSeconds, limit: settings.batchSize,
                                                   excluding: skipped.map { ($0.observationID, $0.sourceLocationID) }) {
            guard let source = places.locations[group.sourceLocationID], source.active else { continue }
            let item = ObservationItem(observationID: group.observationID, obsID: group.obsID, sourceLocationID: source.id, sourceName: source.name)
            created += try await work.attempt(item.description) {
                let name = "\(sanitizedName(group.obsID))-\(source.name)-\(group.fileIDs[0])"
                let package = try await db.createRawDataPackage(name: name, observationID: group.observationID, sourceLocationID: source.id,
                                                                relativePath: "packages/\(name).tar", fileIDs: group.fileIDs)
                logger.info("package \(package.name): \(group.fileIDs.count) files, \(group.bytes) bytes",
                            metadata: ["package": "\(package.id)", "observation": "\(group.obsID)"])
                return 1
            }
        }
        // Every pending package gets its operation, into its site's primary buffer (chosen once per site and cycle).
        let packages = try await db.packagesWithoutOperation(limit: settings.batchSize)
        var buffers: [String: BufferChoice] = [:]
        for site in Set(packages.compactMap { places.siteName(of: $0.sourceLocationID) }).sorted() {
            buffers[site] = try await BufferSelection.primaryBuffer(db, siteShortName: site, logger: logger)
        }
        created += try await work.scheduleEach(packages, item: { "package \($0.id)" }) { package in
            guard let buffer = places.siteName(of: package.sourceLocationID).flatMap({ buffers[$0] }) else { return nil }
            return OperationPlan(.rawDataPackageCreation, at: package.sourceLocationID, target: .rawDataPackage(package.id),
                                 targetLocationID: buffer.location.id, sizeHintBytes: package.bytes)
        }
        return created
    }
}

/// An observation's files at one SOURCE location, as a set-aside item: named by its row id, with
/// the start of its name (the name itself may be what is wrong) and the location.
struct ObservationItem: CustomStringConvertible {
    let observationID: Int64
    let obsID: String
    let sourceLocationID: Int64
    let sourceName: String

    init(observationID: Int64, obsID: String, sourceLocationID: Int64, sourceName: String) {
        self.observationID = observationID
        self.obsID = obsID
        self.sourceLocationID = sourceLocationID
        self.sourceName = sourceName
    }

    var description: String {
        "observation \(observationID) (\(obsID.prefix(64))\(obsID.count > 64 ? "..." : "")) at \(sourceName)"
    }

    /// The item again from its description (location names have no blanks).
    init?(parsing item: String, places: Places) {
        guard item.hasPrefix("observation "), let at = item.range(of: " at ", options: .backwards),
              let id = Int64(item.dropFirst("observation ".count).prefix { $0.isNumber }),
              let location = places.locations.values.first(where: { $0.name == item[at.upperBound...] && $0.locationType == .source }) else { return nil }
        self.init(observationID: id, obsID: "", sourceLocationID: location.id, sourceName: location.name)
    }
}
