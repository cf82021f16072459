import BenchSupport
import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Testing
import TestSupport

/// What a manager's cycle reads follows the work waiting, not the archive: on a catalogue of
/// 100,000 archived files (150,000 copies, 35,000 succeeded operations) a cycle with nothing to
/// do reads a few dozen rows, and one with a batch at every stage reads about what the batch
/// holds. Counted from PostgreSQL's statistics (rows of sequential scans and index entries), so
/// the bounds hold on any machine; `make bench` measures the time at 1,000,000 and 10,000,000.
@Suite("Managers: cost follows the work, not the archive", .enabled(if: TestEnvironment.runPostgresTests))
struct ManagerCostTests {
    static let files = 100_000
    static let batch = 50

    @Test func idleAndBusyCyclesReadWhatWaitsNotWhatIsArchived() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let sites = try await CatalogueSites.create(db)
            try await fillArchive(connection, files: Self.files, sites: sites)
            var settings = ManagerSettings()
            settings.packageSettleSeconds = 0
            settings.batchSize = Self.batch
            let cycles: [any ManagerCycle] = [
                RawDataPackageManager(settings: settings), DataTransferPackageManager(settings: settings), TransferManager(settings: settings),
                UnpackManager(settings: settings), ArchiveManager(settings: settings), DeletionManager(settings: settings),
                IntegrityManager(settings: settings),
            ]
            let reads = ReadCounter(connection)
            let logger = Logger(label: "test")
            func rowsRead(_ cycle: any ManagerCycle) async throws -> (rows: Int64, created: Int) {
                let before = try await reads.read()
                let created = try await cycle.cycle(db, logger: logger)
                return (try await reads.read().rows - before.rows, created)
            }

            // The first round schedules the archives' first fixity passes and audits; after it
            // nothing waits anywhere.
            for cycle in cycles { _ = try await rowsRead(cycle) }
            for cycle in cycles {
                let idle = try await rowsRead(cycle)
                #expect(idle.created == 0, "\(cycle.name) found work on an idle catalogue")
                // The archive holds 100,000 files, 10,000 packages and 1,000 bundles.
                #expect(idle.rows < 200, "\(cycle.name) read \(idle.rows) rows with nothing to do")
            }

            // A batch at every stage: files to package, packages to bundle and to archive, bundles
            // to send and to unpack. Each busy cycle reads in proportion to that, not to the archive.
            try await seedPendingWork(connection, batch: Self.batch, sites: sites)
            var created = 0
            for cycle in cycles {
                let busy = try await rowsRead(cycle)
                created += busy.created
                #expect(busy.rows < Int64(Self.batch) * 200, "\(cycle.name) read \(busy.rows) rows for a batch of \(Self.batch)")
            }
            // Each stage found its batch: packages and their operations, bundles, transfers, unpacking, archive transfers.
            let made = try await connection.query("""
                SELECT operation_type::text AS type, count(*)::int AS n FROM operation WHERE state = 'pending' GROUP BY 1
                """)
            var byType: [String: Int] = [:]
            for row in made { byType[try row["type"]] = try row["n"] }
            #expect(byType["RAW_DATA_PACKAGE_CREATION"] == Self.batch, "\(byType)")
            #expect(byType["DATA_TRANSFER"] ?? 0 >= Self.batch, "\(byType)")
            #expect(byType["DATA_TRANSFER_UNPACKING"] == Self.batch, "\(byType)")
            #expect(byType["LONG_TERM_ARCHIVE_TRANSFER"] == Self.batch, "\(byType)")
            #expect(byType["DATA_TRANSFER_PACKAGE_CREATION"] ?? 0 >= 1, "\(byType)")
            #expect(created > 0)
        }
    }
}
