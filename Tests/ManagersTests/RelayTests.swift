import Foundation
import Postgres
import Testing
import TestSupport

/// A relay route: CCAT's bundles for Cologne go through a site without an archive (Santiago),
/// verified there, then on to Cologne; the relay's copies go once both archives hold the data.
@Suite("ccat daemon: relay routes", .serialized, .enabled(if: TestEnvironment.runPostgresTests && TestEnvironment.runS3Tests))
struct RelayTests {
    @Test func bundlesForCologneGoThroughTheRelaySiteAndArriveEverywhere() async throws {
        let (directory, conninfo, environment) = try await DaemonChaosTests.setUp(database: "ccat_relay", environment: ["DEMO_RELAY": "1"])
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemons = DaemonChaosTests.Daemons(count: 1, arguments: DaemonChaosTests.daemonArguments(directory), environment: environment,
                                               logDirectory: directory)
        defer { daemons.stopAll() }
        try daemons.start(0)
        let db = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "relay test"))
        defer { Task { await db.close() } }
        let finished = try await eventually(within: .seconds(600), every: .milliseconds(500)) { try await DaemonChaosTests.done(db, observations: 20) }
        #expect(finished, "not finished; daemon log in \(directory.path)")
        try await DaemonChaosTests.expectInvariants(db, observations: 20)

        // Every transfer from CCAT to Cologne's side went to Santiago, and each of those bundles
        // went on from Santiago to Cologne on the same route.
        let legs = try await db.query("""
            SELECT t.data_transfer_package_id AS bundle, so.short_name AS origin, sd.short_name AS destination, r.name AS route
            FROM data_transfer t
            JOIN data_location o ON o.id = t.origin_location_id JOIN site so ON so.id = o.site_id
            JOIN data_location d ON d.id = t.destination_location_id JOIN site sd ON sd.id = d.site_id
            LEFT JOIN data_transfer_route r ON r.id = t.route_id
            """).map { (try $0["bundle"] as Int64, try $0["origin"] as String, try $0["destination"] as String, try $0["route"] as String?) }
        #expect(!legs.contains { $0.1 == "ccat" && $0.2 == "cologne" }, "a bundle went to Cologne directly")
        let relayed = Set(legs.filter { $0.1 == "ccat" && $0.2 == "santiago" }.map(\.0))
        #expect(!relayed.isEmpty, "no bundle used the relay (round-robin sends about half to Cologne)")
        for bundle in relayed {
            #expect(legs.contains { $0.0 == bundle && $0.1 == "santiago" && $0.2 == "cologne" && $0.3 == "ccat_via_santiago" }, "bundle \(bundle) stopped at the relay")
        }
        let relayCopies: Int = try #require(try await db.query("""
            SELECT count(*)::int AS n FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id JOIN site s ON s.id = l.site_id
            WHERE s.short_name = 'santiago' AND c.status = 'DELETED'
            """).first)["n"]
        #expect(relayCopies > 0, "the relay's copies were not recorded and deleted")
    }
}
