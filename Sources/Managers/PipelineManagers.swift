import Auth
import Foundation
import Logging
import OpsDB
import Postgres
import Topology

/// What the managers decide with; `etc/ccat.example.yaml` documents each setting.
public struct ManagerSettings: Sendable {
    /// Files of an observation are packaged once none has arrived for this long.
    public var packageSettleSeconds: Double = 60
    /// A bundle is closed at this size, or ...
    public var bundleMaxBytes: Int64 = 100 << 30
    /// ... when its oldest package has waited this long.
    public var bundleMaxAgeSeconds: Double = 3600
    /// SOURCE and BUFFER copies stay at least this long after they were written, unless the
    /// location sets its own `retention`.
    public var defaultRetentionSeconds: Double = 0
    /// How often each location is checked (MONITORING operations).
    public var monitoringIntervalSeconds: Double = 300
    /// Rows a manager handles per query; a full batch makes it go again at once.
    public var batchSize = 200
    /// munged that decodes scientists' staging request credentials.
    public var munge = Munge()
    /// Packages of one staging request go into jobs of up to this many bytes.
    public var stagingJobMaxBytes: Int64 = 500 << 30
    /// How long staged data is kept after it is ready, unless the location sets `retention`.
    public var stagingRetentionSeconds: Int64 = 14 * 86400

    public init() {}
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

    /// Creates the operation on the queue of `locationID`; 1 if created, 0 if a live one already
    /// holds the target (the unique indexes decide).
    func schedule(_ db: OpsDB, _ type: OperationType, at locationID: Int64, target: OperationTarget, targetLocationID: Int64? = nil,
                  sizeHintBytes: Int64 = 0, priority: Int = 0) async throws -> Int {
        try await db.createOperation(type, queue: queue(locationID, type), locationID: locationID, target: target,
                                     targetLocationID: targetLocationID, sizeHintBytes: sizeHintBytes, priority: priority) == nil ? 0 : 1
    }
}

/// 1. New files at SOURCE locations -> raw data packages, one per observation and location, and a
/// RAW_DATA_PACKAGE_CREATION operation writing into the site's primary buffer.
public struct RawDataPackageManager: ManagerCycle {
    public let name = "raw-data-package-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        // Observations set aside are left out of the query, so that they never fill its batch.
        let skipped = setAside.items.compactMap { ObservationItem(parsing: $0, places: places) }
        for group in try await db.unpackagedGroups(settleSeconds: settings.packageSettleSeconds, limit: settings.batchSize,
                                                   excluding: skipped.map { ($0.observationID, $0.sourceLocationID) }) {
            guard let source = places.locations[group.sourceLocationID], source.active else { continue }
            let item = ObservationItem(observationID: group.observationID, obsID: group.obsID, sourceLocationID: source.id, sourceName: source.name)
            created += try await setAside.attempt(db, item.description, logger: logger) {
                let name = "\(sanitizedName(group.obsID))-\(source.name)-\(group.fileIDs[0])"
                let package = try await db.createRawDataPackage(name: name, observationID: group.observationID, sourceLocationID: source.id,
                                                                relativePath: "packages/\(name).tar", fileIDs: group.fileIDs)
                logger.info("package \(package.name): \(group.fileIDs.count) files, \(group.bytes) bytes",
                            metadata: ["package": "\(package.id)", "observation": "\(group.obsID)"])
                return 1
            }
        }
        // Every pending package gets its operation (also after a crash between the two steps).
        var buffers: [String: BufferChoice] = [:]  // one choice per site and cycle
        for package in try await db.packagesWithoutOperation(limit: settings.batchSize) {
            guard let site = places.siteName(of: package.sourceLocationID) else { continue }
            let buffer: BufferChoice
            if let chosen = buffers[site] { buffer = chosen } else {
                buffer = try await BufferSelection.primaryBuffer(db, siteShortName: site, logger: logger)
                buffers[site] = buffer
            }
            created += try await setAside.attempt(db, "package \(package.id)", logger: logger) {
                try await places.schedule(db, .rawDataPackageCreation, at: package.sourceLocationID, target: .rawDataPackage(package.id),
                                          targetLocationID: buffer.location.id, sizeHintBytes: package.bytes)
            }
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

/// 2. Completed packages in a buffer -> bundles (data transfer packages) up to the size limit, or
/// smaller once the oldest has waited `bundleMaxAgeSeconds`.
public struct DataTransferPackageManager: ManagerCycle {
    public let name = "data-transfer-package-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let waiting = try await db.unbundledPackages(limit: settings.batchSize * 10)
        for (bufferID, packages) in Dictionary(grouping: waiting, by: \.bufferID).sorted(by: { $0.key < $1.key }) {
            // A bundle is written next to its packages, so it must fit in what the buffer has free
            // (at its last check). A buffer short of space bundles what it has without waiting:
            // those packages leave, and their space is freed once they are archived.
            let size = BundleSizing(maxBytes: settings.bundleMaxBytes, status: try await db.locationStatus(bufferID),
                                    waitingBytes: packages.reduce(0) { $0 + $1.bytes })
            var batch: [UnbundledPackage] = []
            var bytes: Int64 = 0
            func close() async throws {
                guard !batch.isEmpty else { return }
                let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
                let name = "bundle-\(places.siteName(of: bufferID) ?? "site")-\(stamp)-\(batch[0].packageID)"
                let bundle = try await db.createDataTransferPackage(name: name, originLocationID: bufferID,
                                                                   relativePath: "bundles/\(name).tar", packageIDs: batch.map(\.packageID))
                logger.info("bundle \(bundle.name): \(batch.count) packages, \(bytes) bytes", metadata: ["bundle": "\(bundle.id)"])
                created += 1
                batch = []
                bytes = 0
            }
            for package in packages {
                if !batch.isEmpty, size.bound(bytes + package.bytes, count: batch.count + 1) > size.limit { try await close() }
                batch.append(package)
                bytes += package.bytes
                if size.bound(bytes, count: batch.count) >= size.limit { try await close() }
            }
            if size.pressed || (batch.map(\.ageSeconds).max() ?? 0) >= settings.bundleMaxAgeSeconds { try await close() }
        }
        let setAside = try await SetAside.load(db, manager: name)
        for id in try await db.bundlesWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "bundle \(id)", logger: logger) {
                guard let bundle = try await db.dataTransferPackage(id: id) else { return 0 }
                let size = try await db.rawDataPackages(bundleID: id).reduce(Int64(0)) { $0 + ($1.sizeBytes ?? 0) }
                return try await places.schedule(db, .dataTransferPackageCreation, at: bundle.originLocationID, target: .dataTransferPackage(id),
                                                 sizeHintBytes: size)
            }
        }
        return created
    }
}

/// How large a bundle in one buffer may be: the configured size, or what the buffer had free at
/// its last check (MONITORING) if that is less. When the packages waiting there take half of the
/// free space or more, the buffer is `pressed`: they are bundled now, before more packages take
/// the room their bundles need.
struct BundleSizing {
    let limit: Int64
    let fitsFreeSpace: Bool
    let pressed: Bool

    init(maxBytes: Int64, status: LocationStatus?, waitingBytes: Int64) {
        if let status, status.reachable, let free = status.freeBytes {
            limit = max(min(free, maxBytes), 0)
            fitsFreeSpace = free < maxBytes
            pressed = waitingBytes * 2 >= free
        } else {
            limit = maxBytes
            fitsFreeSpace = false
            pressed = false
        }
    }

    /// The bundle's size on disk for `count` packages of `bytes` in all, when that must fit in
    /// free space: tar headers and padding counted generously (as `TarArchive.sizeBound`).
    func bound(_ bytes: Int64, count: Int) -> Int64 { fitsFreeSpace ? bytes + 1024 + Int64(count) * 2560 : bytes }
}

/// 3. Bundles leave a SOURCE site for one archive site chosen round-robin (primary route), then
/// go from there to every other archive site (secondary routes), so each ends with a copy.
/// Custom routes replace the automatic ones; a relay route's first hop is taken here.
public struct TransferManager: ManagerCycle {
    public let name = "transfer-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    /// Where the first hop of the route from `origin` to `target` lands, by which method.
    func destination(_ db: OpsDB, table: RouteTable, from origin: String, to target: String, places: Places,
                     logger: Logger) async throws -> (location: Int64, method: TransferMethod, routeID: Int64?) {
        let route = try table.route(from: origin, to: target)
        return try await landing(db, hop: route.hops[0], route: route, table: table, places: places, logger: logger)
    }

    func landing(_ db: OpsDB, hop: RouteHop, route: PlannedRoute, table: RouteTable, places: Places,
                 logger: Logger) async throws -> (location: Int64, method: TransferMethod, routeID: Int64?) {
        var locationID: Int64
        if let name = hop.toLocation, let location = places.locations.values.first(where: {
            $0.name == name && places.sites[$0.siteID]?.shortName == hop.toSite
        }) {
            locationID = location.id
        } else {
            locationID = try await BufferSelection.primaryBuffer(db, siteShortName: hop.toSite, logger: logger).location.id
        }
        let routeID = route.name.flatMap { name in table.customRoutes.first { $0.name == name }?.id }
        return (locationID, hop.method, routeID)
    }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        let table = try await RouteTable.load(db)
        let siteIDs = Dictionary(uniqueKeysWithValues: places.sites.values.map { ($0.shortName, $0.id) })
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        // Primary: from the SOURCE sites' buffers to one archive site, round-robin.
        let sourceSiteIDs = table.sourceSites.compactMap { siteIDs[$0] }
        for bundle in try await db.bundlesToSend(originSiteIDs: sourceSiteIDs, limit: settings.batchSize) {
            guard let site = places.locations[bundle.originLocationID].flatMap({ places.sites[$0.siteID] }) else { continue }
            let originSite = site.shortName
            let candidates = table.archiveSites.filter { $0 != originSite }
            guard !candidates.isEmpty else { continue }
            created += try await setAside.attempt(db, "bundle \(bundle.id) (\(bundle.name))", logger: logger) {
                let target = try await RoundRobin.next(db, sourceSite: site, candidates: candidates)
                let hop = try await destination(db, table: table, from: originSite, to: target, places: places, logger: logger)
                let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: bundle.originLocationID,
                                                               destinationLocationID: hop.location, routeID: hop.routeID, method: hop.method)
                logger.info("bundle \(bundle.name) goes \(originSite) -> \(target)", metadata: ["bundle": "\(bundle.id)", "transfer": "\(transfer.id)"])
                return 1
            }
        }
        // Secondary: from the archive site that holds a verified copy to archive sites without one.
        let archiveSiteIDs = table.archiveSites.compactMap { siteIDs[$0] }
        for candidate in try await db.bundlesToReplicate(archiveSiteIDs: archiveSiteIDs, limit: settings.batchSize) {
            guard let from = places.siteName(of: candidate.bufferID), let bundle = try await db.dataTransferPackage(id: candidate.bundleID),
                  let originSite = places.siteName(of: bundle.originLocationID) else { continue }
            let reached = Set(candidate.siteIDs.compactMap { places.sites[$0]?.shortName } + [originSite])
            for target in table.archiveSites where !reached.contains(target) {
                created += try await setAside.attempt(db, "bundle \(bundle.id) (\(bundle.name)) to \(target)", logger: logger) {
                    let hop = try await destination(db, table: table, from: from, to: target, places: places, logger: logger)
                    let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: candidate.bufferID,
                                                                   destinationLocationID: hop.location, routeID: hop.routeID, method: hop.method)
                    logger.info("bundle \(bundle.name) replicates \(from) -> \(target)", metadata: ["bundle": "\(bundle.id)", "transfer": "\(transfer.id)"])
                    return 1
                }
            }
        }
        // Relays: a bundle verified at the relay site of its route goes on along the route's next hop.
        for forward in try await db.relayedBundlesToForward(limit: settings.batchSize) {
            guard let route = table.customRoutes.first(where: { $0.id == forward.routeID }), let at = places.siteName(of: forward.bufferID),
                  let origin = places.sites[route.originSiteID]?.shortName, let target = places.sites[route.destinationSiteID]?.shortName else { continue }
            created += try await setAside.attempt(db, "bundle \(forward.bundleID) at \(at) on route \(route.name)", logger: logger) {
                let planned = try table.route(from: origin, to: target)
                guard let next = planned.hops.first(where: { $0.fromSite == at }) else {
                    throw RouteHasNoHop(route: route.name, site: at)
                }
                let hop = try await landing(db, hop: next, route: planned, table: table, places: places, logger: logger)
                let transfer = try await db.createDataTransfer(bundleID: forward.bundleID, originLocationID: forward.bufferID,
                                                               destinationLocationID: hop.location, routeID: route.id, method: hop.method)
                logger.info("bundle \(forward.bundleID) relays \(at) -> \(next.toSite) (route \(route.name))",
                            metadata: ["bundle": "\(forward.bundleID)", "transfer": "\(transfer.id)"])
                return 1
            }
        }
        for id in try await db.transfersWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "transfer \(id)", logger: logger) {
                guard let transfer = try await db.dataTransfer(id: id), let bundle = try await db.dataTransferPackage(id: transfer.dataTransferPackageID) else { return 0 }
                return try await places.schedule(db, .dataTransfer, at: transfer.originLocationID, target: .dataTransfer(id),
                                                 targetLocationID: transfer.destinationLocationID, sizeHintBytes: bundle.sizeBytes ?? 0)
            }
        }
        return created
    }
}

/// A relay route that has no hop leaving the site a bundle reached.
struct RouteHasNoHop: Error, CustomStringConvertible {
    let route: String
    let site: String
    var description: String { "route \(route) has no hop from \(site); the bundle stays there until the route is fixed ('ccat routes list')" }
}

/// 4. Arrived bundles -> DATA_TRANSFER_UNPACKING at the destination buffer.
public struct UnpackManager: ManagerCycle {
    public let name = "unpack-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        for id in try await db.transfersToUnpack(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "transfer \(id)", logger: logger) {
                guard let transfer = try await db.dataTransfer(id: id) else { return 0 }
                return try await places.schedule(db, .dataTransferUnpacking, at: transfer.destinationLocationID, target: .dataTransfer(id),
                                                 sizeHintBytes: transfer.bytesTransferred ?? 0)
            }
        }
        return created
    }
}

/// 5. Verified packages in a buffer -> LONG_TERM_ARCHIVE_TRANSFER into each active archive of
/// that site, verified after upload by the runner.
public struct ArchiveManager: ManagerCycle {
    public let name = "archive-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        for candidate in try await db.packagesToArchive(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "package \(candidate.packageID) into archive \(candidate.archiveID)", logger: logger) {
                _ = try await db.createLongTermArchiveTransfer(packageID: candidate.packageID, originLocationID: candidate.bufferID,
                                                               destinationLocationID: candidate.archiveID)
                return 1
            }
        }
        for id in try await db.archiveTransfersWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "archive transfer \(id)", logger: logger) {
                guard let transfer = try await db.longTermArchiveTransfer(id: id), let package = try await db.rawDataPackage(id: transfer.rawDataPackageID) else { return 0 }
                return try await places.schedule(db, .longTermArchiveTransfer, at: transfer.destinationLocationID,
                                                 target: .longTermArchiveTransfer(id), sizeHintBytes: package.sizeBytes ?? 0)
            }
        }
        return created
    }
}

/// 6. Scientists' requests -> staging jobs (see `StagingRequestCycle`); staging jobs -> STAGING at their PROCESSING location, on its own queue (its submission
/// profile can give it a higher priority than archiving), with a higher operation priority so
/// scientists' data goes before background work in shared queues.
public struct StagingManager: ManagerCycle {
    public let name = "staging-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        var created = try await StagingRequestCycle(settings: settings).run(db, logger: logger)
        let places = try await Places.load(db)
        let setAside = try await SetAside.load(db, manager: name)
        for id in try await db.stagingJobsWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "staging job \(id)", logger: logger) {
                guard let job = try await db.stagingJob(id: id) else { return 0 }
                let size = try await db.stagingJobPackages(id).reduce(Int64(0)) { $0 + ($1.sizeBytes ?? 0) }
                guard try await places.schedule(db, .staging, at: job.destinationLocationID, target: .stagingJob(id), sizeHintBytes: size, priority: 10) == 1 else { return 0 }
                logger.info("staging job \(id) scheduled", metadata: ["staging_job": "\(id)"])
                return 1
            }
        }
        return created
    }
}

/// 7. Temporary copies (SOURCE files, BUFFER packages and bundles; staged data of ended
/// requests) -> DELETION, only when
/// `deletionBlocker` finds nothing against it: verified archive copies at every archive site and
/// no unfinished reader. The runner checks again in the transaction that deletes.
public final class DeletionManager: ManagerCycle, @unchecked Sendable {
    public let name = "deletion-manager"
    let settings: ManagerSettings
    /// Where the scan continues; wraps around at the end of the table.
    private var cursor: Int64 = 0
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        let candidates = try await db.deletionCandidates(afterID: cursor, defaultRetentionSeconds: settings.defaultRetentionSeconds,
                                                         limit: settings.batchSize)
        cursor = candidates.count < settings.batchSize ? 0 : candidates.last!.copyID
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        for candidate in candidates {
            created += try await setAside.attempt(db, "copy \(candidate.copyID)", logger: logger) {
                try await db.transaction { db in
                    if try await db.deletionBlocker(copyID: candidate.copyID, exceptOperation: 0) != nil { return 0 }
                    return try await places.schedule(db, .deletion, at: candidate.locationID, target: .physicalCopy(candidate.copyID))
                }
            }
        }
        // Staged data of requests that ended: one DELETION removes a job's whole directory.
        for job in try await db.stagingJobsToClean(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "staging job \(job.jobID)", logger: logger) {
                try await places.schedule(db, .deletion, at: job.locationID, target: .stagingJob(job.jobID))
            }
        }
        return created
    }
}

/// 8. Every location is checked every `monitoringIntervalSeconds` (MONITORING operations).
public final class MonitoringManager: ManagerCycle, @unchecked Sendable {
    public let name = "monitoring-manager"
    let settings: ManagerSettings
    private var last: ContinuousClock.Instant?
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        if let last, ContinuousClock.now - last < .seconds(settings.monitoringIntervalSeconds) { return 0 }
        last = .now
        let places = try await Places.load(db)
        let setAside = try await SetAside.load(db, manager: name)
        for location in places.locations.values where location.active {
            _ = try await setAside.attempt(db, "location \(location.id) (\(location.name))", logger: logger) {
                try await places.schedule(db, .monitoring, at: location.id, target: .none)
            }
        }
        // Monitoring results are no work for the other managers: report nothing, wake no one.
        return 0
    }
}
