import Foundation
import Logging
import OpsDB
import Postgres
import Testing
import TestSupport
@testable import Topology

@Suite("Routes, round-robin and buffer failover against a real PostgreSQL", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct RoutingTests {
    @Test func automaticRoutesFollowTheTopology() async throws {
        try await withExampleTopology { _, db in
            let table = try await RouteTable.load(db)
            #expect(table.sourceSites == ["ccat"])
            #expect(table.archiveSites == ["cologne", "us"])
            let routes = table.automaticRoutes().map { "\($0.origin)->\($0.destination):\($0.kind.rawValue)" }
            #expect(routes == ["ccat->cologne:primary", "ccat->us:primary", "cologne->us:secondary", "us->cologne:secondary"])
            let route = try table.route(from: "ccat", to: "us")
            #expect(route.kind == .primary && route.hops.count == 1 && route.hops[0].toSite == "us")
            #expect(throws: RoutingError.self) { try table.route(from: "us", to: "ccat") }
        }
    }

    @Test func customRoutesWinAndRelayYieldsTwoHops() async throws {
        try await withExampleTopology { _, db in
            let sites = Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.shortName, $0.id) })
            _ = try await db.insertRoute(name: "via_cologne", originSiteID: sites["ccat"]!, destinationSiteID: sites["us"]!, type: .relay,
                                         relaySiteID: sites["cologne"]!, originLocationID: nil, destinationLocationID: nil, method: .rsync)
            let archive = try #require(try await db.location(siteShortName: "cologne", name: "long_term_archive"))
            _ = try await db.insertRoute(name: "straight_in", originSiteID: sites["ccat"]!, destinationSiteID: sites["cologne"]!, type: .direct,
                                         relaySiteID: nil, originLocationID: nil, destinationLocationID: archive.id, method: .s3)
            let table = try await RouteTable.load(db)
            let relay = try table.route(from: "ccat", to: "us")
            #expect(relay.kind == .relay && relay.name == "via_cologne")
            #expect(relay.hops.map { "\($0.fromSite)->\($0.toSite)" } == ["ccat->cologne", "cologne->us"])
            #expect(relay.hops.allSatisfy { $0.method == .rsync })
            let direct = try table.route(from: "ccat", to: "cologne")
            #expect(direct.kind == .direct && direct.hops.count == 1 && direct.hops[0].intoArchive && direct.hops[0].toLocation == "long_term_archive")
            // Automatic routes not covered by a custom one stay; covered ones are marked.
            #expect(try table.route(from: "cologne", to: "us").kind == .secondary)
            let listed = table.allRoutes()
            #expect(listed.first { $0.kind == .primary && $0.destination == "us" }?.overriddenBy == "via_cologne")
            #expect(listed.first { $0.kind == .secondary }?.overriddenBy == nil)

            let custom = try #require(try await db.location(siteShortName: "cologne", name: "buffer_secondary"))
            let ccatBuffer = try #require(try await db.location(siteShortName: "ccat", name: "buffer"))
            #expect(try await db.deleteRoute(name: "straight_in"))
            _ = try await db.insertRoute(name: "pinned", originSiteID: sites["ccat"]!, destinationSiteID: sites["cologne"]!, type: .custom,
                                         relaySiteID: nil, originLocationID: ccatBuffer.id, destinationLocationID: custom.id, method: .bbcp)
            let pinned = try await RouteTable.load(db).route(from: "ccat", to: "cologne")
            #expect(pinned.kind == .custom && pinned.hops.map(\.toLocation) == ["buffer_secondary"] && pinned.hops[0].fromLocation == "buffer")
        }
    }

    func roundRobinCounts(_ database: TestDatabase, source: Site, sites: [String], decisions: Int, connections: Int) async throws -> [String: Int] {
        let picks = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<connections {
                group.addTask {
                    let connection = try await database.connect()
                    var picks: [String] = []
                    for _ in 0..<(decisions / connections) {
                        picks.append(try await RoundRobin.next(OpsDB(connection), sourceSite: source, candidates: sites))
                    }
                    await connection.close()
                    return picks
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        return picks.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    @Test(arguments: [2, 3])
    func roundRobinIsEvenConcurrentAndSurvivesRestarts(archiveSites: Int) async throws {
        try await withTestDatabase { database, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let source = try await db.insertSite(name: "Telescope", shortName: "ccat")
            let candidates = ["cologne", "us", "tokyo"].prefix(archiveSites).map { $0 }
            // Sequential, then two connections deciding at once.
            for connections in [1, 2] {
                let counts = try await roundRobinCounts(database, source: source, sites: candidates, decisions: 3000, connections: connections)
                #expect(counts.values.reduce(0, +) == 3000)
                #expect(Set(counts.keys) == Set(candidates))
                #expect(counts.values.max()! - counts.values.min()! <= 1, "uneven with \(connections) connection(s): \(counts)")
            }
            // A "restart" (a new connection, as a new daemon would have) continues where the state left off.
            let lastIndex: Int = try #require(try await connection.query("SELECT last_index FROM round_robin_state WHERE source_site_id = \(source.id)").first?["last_index"])
            let fresh = try await database.connect()
            let next = try await RoundRobin.next(OpsDB(fresh), sourceSite: source, candidates: candidates)
            #expect(next == candidates.sorted()[(lastIndex + 1) % candidates.count])
            let decisions: Int64? = try await fresh.query("SELECT decisions FROM round_robin_state WHERE source_site_id = \(source.id)").first?["decisions"]
            #expect(decisions == 6001)
            await fresh.close()
        }
    }

    @Test func bufferFailover() async throws {
        try await withExampleTopology { _, db in
            let logger = Logger(label: "test")
            #expect(try await BufferSelection.primaryBuffer(db, siteShortName: "cologne", logger: logger).location.name == "buffer")
            // Priority 1 inactive: priority 2 becomes primary, and the skipped one is reported.
            try await db.connection.execute("UPDATE data_location SET active = false WHERE name = 'buffer' AND site_id = (SELECT id FROM site WHERE short_name = 'cologne')")
            let failover = try await BufferSelection.primaryBuffer(db, siteShortName: "cologne", logger: logger)
            #expect(failover.location.name == "buffer_secondary")
            #expect(failover.skipped.map(\.name) == ["buffer"])
            #expect(failover.skipped.first?.reason == "is inactive")
            // A buffer above its fill threshold is passed over too.
            try await db.connection.execute("UPDATE data_location SET active = true WHERE site_id = (SELECT id FROM site WHERE short_name = 'cologne') AND location_type = 'BUFFER'")
            let primary = try #require(try await db.location(siteShortName: "cologne", name: "buffer"))
            try await db.recordLocationStatus(LocationStatus(dataLocationID: primary.id, measuredAt: Date(), reachable: true,
                                                             totalBytes: 1000, freeBytes: 50, usedBytes: 950, errorMessage: nil))
            let full = try await BufferSelection.primaryBuffer(db, siteShortName: "cologne", logger: logger)
            #expect(full.location.name == "buffer_secondary")
            #expect(full.skipped.first?.reason == "is 95% full (threshold 90%)")
            // None usable: a clear error that lists every buffer and why.
            try await db.connection.execute("UPDATE data_location SET active = false WHERE site_id = (SELECT id FROM site WHERE short_name = 'cologne') AND location_type = 'BUFFER'")
            let error = await #expect(throws: NoBufferAvailable.self) {
                try await BufferSelection.primaryBuffer(db, siteShortName: "cologne", logger: logger)
            }
            #expect(error?.considered.map(\.name) == ["buffer", "buffer_secondary", "buffer_backup"])
            #expect(error?.description.contains("site cologne has no usable buffer") == true)
        }
    }
}
