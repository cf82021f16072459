import Foundation
import Logging
import OpsDB
import Topology

/// 3. Bundles leave a SOURCE site for one archive site chosen round-robin (primary route), then
/// go from there to every other archive site (secondary routes), so each ends with a copy.
/// Custom routes replace the automatic ones; a relay route's first hop is taken here.
public struct TransferManager: ManagerCycle {
    public let name = "transfer-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    /// Where the first hop of the route from `origin` to `target` lands, by which method.
    func destination(_ db: OpsDB, table: RouteTable, from origin: String, to target: String, places: Places, buffers: LandingBuffers,
                     logger: Logger) async throws -> (location: Int64, method: TransferMethod, routeID: Int64?) {
        let route = try table.route(from: origin, to: target)
        return try await landing(db, hop: route.hops[0], route: route, table: table, places: places, buffers: buffers, logger: logger)
    }

    func landing(_ db: OpsDB, hop: RouteHop, route: PlannedRoute, table: RouteTable, places: Places, buffers: LandingBuffers,
                 logger: Logger) async throws -> (location: Int64, method: TransferMethod, routeID: Int64?) {
        var locationID: Int64
        if let name = hop.toLocation, let location = places.locations.values.first(where: {
            $0.name == name && places.sites[$0.siteID]?.shortName == hop.toSite
        }) {
            locationID = location.id
        } else {
            locationID = try await buffers.buffer(db, site: hop.toSite, logger: logger)
        }
        let routeID = route.name.flatMap { name in table.customRoutes.first { $0.name == name }?.id }
        return (locationID, hop.method, routeID)
    }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let places = work.places
        let table = try await RouteTable.load(db)
        let siteIDs = Dictionary(uniqueKeysWithValues: places.sites.values.map { ($0.shortName, $0.id) })
        let buffers = LandingBuffers()
        var created = 0
        // Primary: from the SOURCE sites' buffers to one archive site, round-robin.
        let sourceSiteIDs = table.sourceSites.compactMap { siteIDs[$0] }
        for bundle in try await db.bundlesToSend(originSiteIDs: sourceSiteIDs, limit: settings.batchSize) {
            guard let site = places.locations[bundle.originLocationID].flatMap({ places.sites[$0.siteID] }) else { continue }
            let originSite = site.shortName
            let candidates = table.archiveSites.filter { $0 != originSite }
            guard !candidates.isEmpty else { continue }
            created += try await work.attempt("bundle \(bundle.id) (\(bundle.name))") {
                let target = try await RoundRobin.next(db, sourceSite: site, candidates: candidates)
                let hop = try await destination(db, table: table, from: originSite, to: target, places: places, buffers: buffers, logger: logger)
                let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: bundle.originLocationID,
                                                               destinationLocationID: hop.location, routeID: hop.routeID, method: hop.method)
                logger.info("bundle \(bundle.name) goes \(originSite) -> \(target)", metadata: ["bundle": "\(bundle.id)", "transfer": "\(transfer.id)"])
                return 1
            }
        }
        // Secondary: from the archive site that holds a verified copy to archive sites without one.
        let archiveSiteIDs = table.archiveSites.compactMap { siteIDs[$0] }
        for candidate in try await db.bundlesToReplicate(archiveSiteIDs: archiveSiteIDs, limit: settings.batchSize) {
            guard let from = places.siteName(of: candidate.bufferID), let originSite = places.siteName(of: candidate.originLocationID) else { continue }
            let reached = Set(candidate.siteIDs.compactMap { places.sites[$0]?.shortName } + [originSite])
            for target in table.archiveSites where !reached.contains(target) {
                created += try await work.attempt("bundle \(candidate.bundleID) (\(candidate.bundleName)) to \(target)") {
                    let hop = try await destination(db, table: table, from: from, to: target, places: places, buffers: buffers, logger: logger)
                    let transfer = try await db.createDataTransfer(bundleID: candidate.bundleID, originLocationID: candidate.bufferID,
                                                                   destinationLocationID: hop.location, routeID: hop.routeID, method: hop.method)
                    logger.info("bundle \(candidate.bundleName) replicates \(from) -> \(target)",
                                metadata: ["bundle": "\(candidate.bundleID)", "transfer": "\(transfer.id)"])
                    return 1
                }
            }
        }
        // Relays: a bundle verified at the relay site of its route goes on along the route's next hop.
        for forward in try await db.relayedBundlesToForward(limit: settings.batchSize) {
            guard let route = table.customRoutes.first(where: { $0.id == forward.routeID }), let at = places.siteName(of: forward.bufferID),
                  let origin = places.sites[route.originSiteID]?.shortName, let target = places.sites[route.destinationSiteID]?.shortName else { continue }
            created += try await work.attempt("bundle \(forward.bundleID) at \(at) on route \(route.name)") {
                let planned = try table.route(from: origin, to: target)
                guard let next = planned.hops.first(where: { $0.fromSite == at }) else {
                    throw RouteHasNoHop(route: route.name, site: at)
                }
                let hop = try await landing(db, hop: next, route: planned, table: table, places: places, buffers: buffers, logger: logger)
                let transfer = try await db.createDataTransfer(bundleID: forward.bundleID, originLocationID: forward.bufferID,
                                                               destinationLocationID: hop.location, routeID: route.id, method: hop.method)
                logger.info("bundle \(forward.bundleID) relays \(at) -> \(next.toSite) (route \(route.name))",
                            metadata: ["bundle": "\(forward.bundleID)", "transfer": "\(transfer.id)"])
                return 1
            }
        }
        let unscheduled = try await db.transfersWithoutOperation(limit: settings.batchSize)
        let ends = try await db.transferEnds(ids: unscheduled)
        created += try await work.scheduleEach(unscheduled, item: { "transfer \($0)" }) { id in
            guard let transfer = ends[id] else { return nil }
            return OperationPlan(.dataTransfer, at: transfer.origin, target: .dataTransfer(id), targetLocationID: transfer.destination,
                                 sizeHintBytes: transfer.bundleBytes)
        }
        // How many jobs each link may carry at once, from what its transfers achieved.
        _ = try await work.attempt("link optimizer") { try await LinkOptimizer(settings: settings).run(db, logger: logger) }
        return created
    }
}

/// The buffer where bundles for each site land, chosen once per cycle (as the raw data package
/// manager chooses a site's buffer for its packages) instead of once per bundle.
final class LandingBuffers {
    private var chosen: [String: Int64] = [:]

    func buffer(_ db: OpsDB, site: String, logger: Logger) async throws -> Int64 {
        if let id = chosen[site] { return id }
        let id = try await BufferSelection.primaryBuffer(db, siteShortName: site, logger: logger).location.id
        chosen[site] = id
        return id
    }
}

/// A relay route that has no hop leaving the site a bundle reached.
struct RouteHasNoHop: Error, CustomStringConvertible {
    let route: String
    let site: String
    var description: String { "route \(route) has no hop from \(site); the bundle stays there until the route is fixed ('ccat routes list')" }
}
