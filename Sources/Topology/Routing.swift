import Foundation
import OpsDB
import Postgres

/// Why a route exists.
public enum RouteKind: String, Codable, Sendable {
    /// Automatic: a SOURCE site to a LONG_TERM_ARCHIVE site.
    case primary
    /// Automatic: between LONG_TERM_ARCHIVE sites, so every archive site ends up with a copy.
    case secondary
    /// Custom, from `data_transfer_route`.
    case direct, relay, custom
}

/// One leg of a route. A nil location means "the site's primary buffer", chosen when the transfer
/// is created (priority, then failover).
public struct RouteHop: Codable, Sendable, Equatable {
    public var fromSite: String
    public var toSite: String
    public var fromLocation: String?
    public var toLocation: String?
    /// DIRECT routes deliver straight into the destination's long-term archive.
    public var intoArchive: Bool
    public var method: TransferMethod
}

/// How data goes from one site to another.
public struct PlannedRoute: Codable, Sendable, Equatable {
    public var origin: String
    public var destination: String
    public var kind: RouteKind
    /// The custom route's name; nil for automatic routes.
    public var name: String?
    public var hops: [RouteHop]
    /// For an automatic route that a custom one replaces: that route's name.
    public var overriddenBy: String?
}

public struct RoutingError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Routes derived from the topology, with custom routes overriding automatic ones.
public struct RouteTable: Sendable {
    public var sites: [Site]
    /// Sites with an active SOURCE location.
    public var sourceSites: [String]
    /// Sites with an active LONG_TERM_ARCHIVE location, in round-robin order (by short name).
    public var archiveSites: [String]
    public var customRoutes: [DataTransferRoute]
    var locationNames: [Int64: (site: String, name: String)]

    public static func load(_ db: OpsDB) async throws -> RouteTable {
        let sites = try await db.sites()
        let siteNames = Dictionary(uniqueKeysWithValues: sites.map { ($0.id, $0.shortName) })
        let locations = try await db.locations()
        var names: [Int64: (String, String)] = [:]
        for location in locations { names[location.id] = (siteNames[location.siteID] ?? "?", location.name) }
        func sitesWith(_ type: LocationType) -> [String] {
            Set(locations.filter { $0.active && $0.locationType == type }.compactMap { siteNames[$0.siteID] }).sorted()
        }
        return RouteTable(sites: sites, sourceSites: sitesWith(.source), archiveSites: sitesWith(.longTermArchive),
                          customRoutes: try await db.routes().filter(\.active), locationNames: names)
    }

    func shortName(_ siteID: Int64) -> String { sites.first { $0.id == siteID }?.shortName ?? "?" }

    /// The automatic routes: primary (source -> every archive site) and secondary (archive <-> archive).
    public func automaticRoutes() -> [(origin: String, destination: String, kind: RouteKind)] {
        var routes: [(String, String, RouteKind)] = []
        for source in sourceSites {
            for archive in archiveSites where archive != source {
                routes.append((source, archive, .primary))
            }
        }
        for origin in archiveSites {
            for destination in archiveSites where destination != origin {
                routes.append((origin, destination, .secondary))
            }
        }
        return routes
    }

    /// The route from one site to another: a matching custom route if there is one, else the
    /// automatic route (one hop, buffer to buffer).
    public func route(from origin: String, to destination: String) throws -> PlannedRoute {
        if let custom = customRoutes.first(where: { shortName($0.originSiteID) == origin && shortName($0.destinationSiteID) == destination }) {
            return plan(custom)
        }
        guard let automatic = automaticRoutes().first(where: { $0.origin == origin && $0.destination == destination }) else {
            throw RoutingError(description: "no route from \(origin) to \(destination): data flows from SOURCE sites (\(sourceSites.joined(separator: ", "))) to LONG_TERM_ARCHIVE sites (\(archiveSites.joined(separator: ", "))); add one with 'ccat routes add'")
        }
        return PlannedRoute(origin: origin, destination: destination, kind: automatic.kind, name: nil,
                            hops: [RouteHop(fromSite: origin, toSite: destination, fromLocation: nil, toLocation: nil, intoArchive: false, method: .copy)],
                            overriddenBy: nil)
    }

    func plan(_ route: DataTransferRoute) -> PlannedRoute {
        let origin = shortName(route.originSiteID), destination = shortName(route.destinationSiteID)
        let hops: [RouteHop]
        let kind: RouteKind
        switch route.routeType {
        case .direct:
            kind = .direct
            hops = [RouteHop(fromSite: origin, toSite: destination, fromLocation: route.originLocationID.flatMap { locationNames[$0]?.name },
                             toLocation: route.destinationLocationID.flatMap { locationNames[$0]?.name }, intoArchive: true, method: route.method)]
        case .relay:
            kind = .relay
            let relay = route.relaySiteID.map(shortName) ?? "?"
            hops = [RouteHop(fromSite: origin, toSite: relay, fromLocation: nil, toLocation: nil, intoArchive: false, method: route.method),
                    RouteHop(fromSite: relay, toSite: destination, fromLocation: nil, toLocation: nil, intoArchive: false, method: route.method)]
        case .custom:
            kind = .custom
            hops = [RouteHop(fromSite: origin, toSite: destination, fromLocation: route.originLocationID.flatMap { locationNames[$0]?.name },
                             toLocation: route.destinationLocationID.flatMap { locationNames[$0]?.name }, intoArchive: false, method: route.method)]
        }
        return PlannedRoute(origin: origin, destination: destination, kind: kind, name: route.name, hops: hops, overriddenBy: nil)
    }

    /// Every route for `ccat routes list`: automatic ones (marked when a custom route overrides
    /// them) and custom ones.
    public func allRoutes() -> [PlannedRoute] {
        var result: [PlannedRoute] = []
        for automatic in automaticRoutes() {
            var route = PlannedRoute(origin: automatic.origin, destination: automatic.destination, kind: automatic.kind, name: nil,
                                     hops: [RouteHop(fromSite: automatic.origin, toSite: automatic.destination, fromLocation: nil,
                                                     toLocation: nil, intoArchive: false, method: .copy)], overriddenBy: nil)
            route.overriddenBy = customRoutes.first {
                shortName($0.originSiteID) == automatic.origin && shortName($0.destinationSiteID) == automatic.destination
            }?.name
            result.append(route)
        }
        result += customRoutes.map(plan)
        return result
    }
}

/// Round-robin over long-term-archive sites per source site, kept in `round_robin_state` so it
/// survives restarts. The counter moves in one statement under the row's lock, so concurrent
/// callers (two daemons) always see distinct, consecutive positions.
public enum RoundRobin {
    public static func next(_ db: OpsDB, sourceSite: Site, candidates: [String]) async throws -> String {
        let ordered = candidates.sorted()
        guard !ordered.isEmpty else {
            throw RoutingError(description: "site \(sourceSite.shortName) has no long-term archive site to send data to; declare an active LONG_TERM_ARCHIVE location")
        }
        return ordered[try await db.nextRoundRobinIndex(sourceSiteID: sourceSite.id, modulo: ordered.count) % ordered.count]
    }
}
