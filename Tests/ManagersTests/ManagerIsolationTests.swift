import Foundation
import Logging
@testable import Managers
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("Managers: one failing item does not stop the rest")
struct ManagerIsolationTests {
    /// A SOURCE and a buffer, and three observations of one file each; the first has an id of
    /// 2,680 characters, registered before the identifier limits (the constraint is NOT VALID for
    /// exactly these), random so that the index cannot compress it below its row limit.
    static func withHugeObservation(_ body: (PostgresConnection, OpsDB, String) async throws -> Void) async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let site = try await db.insertSite(name: "CCAT", shortName: "ccat")
            let source = try await db.insertLocation(siteID: site.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source"))
            _ = try await db.insertLocation(siteID: site.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
            try await connection.execute("ALTER TABLE executed_obs_unit DROP CONSTRAINT executed_obs_unit_obs_id_limits")
            let hugeID = "o" + String((0..<80).map { _ in UUID().uuidString }.joined().prefix(2679))
            for obsID in [hugeID, "obs-2", "obs-3"] {
                let observation = try await db.upsertObservation(obsID: obsID)
                _ = try await db.registerRawDataFile(NewRawDataFile(relativePath: "\(obsID.prefix(20))/a.fits", sizeBytes: 1, checksum: String(repeating: "0", count: 64),
                                                                    executedObsUnitID: observation.id, sourceLocationID: source.id))
            }
            try await body(connection, db, hugeID)
        }
    }

    /// An observation whose package cannot be created (an id registered before the identifier
    /// limits, 2,680 characters: its package name exceeds the index's row limit) is set aside with
    /// its error, visible in the status; the other observations are packaged in the same cycle.
    @Test func anObservationThatCannotBePackagedIsSetAsideAndTheRestProceeds() async throws {
        try await Self.withHugeObservation { connection, db, hugeID in
            var settings = ManagerSettings()
            settings.packageSettleSeconds = 0
            let manager = RawDataPackageManager(settings: settings)
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            let packaged = try await connection.query("SELECT count(*)::int AS n FROM raw_data_package").first?["n", as: Int.self]
            #expect(packaged == 2)
            let issues = try await db.pipelineStatus().setAside
            #expect(issues.count == 1)
            #expect(issues.first?.manager == "raw-data-package-manager" && issues.first?.item.contains("(\(hugeID.prefix(64))...) at instrument_data") == true, "\(issues.first?.item ?? "")")
            #expect(issues.first?.error.contains("index row") == true, "\(issues.first?.error ?? "")")

            // Set aside: the next cycle does not try it again...
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await db.managerIssues().first?.failures == 1)
            // ...until its time has passed.
            try await connection.execute("UPDATE manager_issue SET last_seen_at = now() - interval '11 minutes'")
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await db.managerIssues().first?.failures == 2)
        }
    }

    /// With a batch of one, the observation set aside comes first in every query: it is left out
    /// of the query, so each later cycle packages another observation.
    @Test func anObservationSetAsideDoesNotTakeUpTheBatch() async throws {
        try await Self.withHugeObservation { connection, db, _ in
            var settings = ManagerSettings()
            settings.packageSettleSeconds = 0
            settings.batchSize = 1
            let manager = RawDataPackageManager(settings: settings)
            func packaged() async throws -> Int? {
                try await connection.query("SELECT count(*)::int AS n FROM raw_data_package").first?["n", as: Int.self]
            }
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await packaged() == 0)
            #expect(try await db.managerIssues().count == 1)
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await packaged() == 1)
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await packaged() == 2)
        }
    }

    /// Any manager: an item whose handling fails is set aside with its error and the others are
    /// handled; once it works it is cleared. The database's own trouble still ends the cycle.
    @Test func anyItemThatFailsIsSetAsideAndClearedOnceItWorks() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            struct Broken: Error, CustomStringConvertible { var description: String { "route has no hop" } }
            let logger = Logger(label: "test")
            var setAside = try await SetAside.load(db, manager: "transfer-manager")
            var handled: [String] = []
            for item in ["bundle 1", "bundle 2", "bundle 3"] {
                handled.append(contentsOf: try await setAside.attempt(db, item, logger: logger) {
                    if item == "bundle 2" { throw Broken() }
                    return 1
                } == 1 ? [item] : [])
            }
            #expect(handled == ["bundle 1", "bundle 3"])
            let issues = try await db.pipelineStatus().setAside
            #expect(issues.map(\.item) == ["bundle 2"] && issues.first?.error == "route has no hop" && issues.first?.manager == "transfer-manager")

            // Skipped while recent; tried again later, and cleared once it works.
            setAside = try await SetAside.load(db, manager: "transfer-manager")
            #expect(try await setAside.attempt(db, "bundle 2", logger: logger) { 1 } == 0)
            try await connection.execute("UPDATE manager_issue SET last_seen_at = now() - interval '11 minutes'")
            setAside = try await SetAside.load(db, manager: "transfer-manager")
            #expect(try await setAside.attempt(db, "bundle 2", logger: logger) { 1 } == 1)
            #expect(try await db.managerIssues().isEmpty)

            // A lost connection is not the item's fault: it ends the cycle and sets nothing aside.
            await #expect(throws: PostgresError.self) {
                _ = try await setAside.attempt(db, "bundle 4", logger: logger) {
                    throw PostgresError(code: .connectionFailed, message: "server closed the connection")
                }
            }
            #expect(try await db.managerIssues().isEmpty)
        }
    }
}
