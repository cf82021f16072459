import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("Migrations", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct MigrationTests {
    @Test func applyFromEmptyThenNoOp() async throws {
        try await withTestDatabase { _, db in
            let migrator = try Migrator.bundled()
            #expect(!migrator.migrations.isEmpty)
            let before = try await migrator.status(db)
            #expect(before.allSatisfy { !$0.isApplied })

            let applied = try await migrator.migrate(db)
            #expect(applied.map(\.version) == migrator.migrations.map(\.version))
            let after = try await migrator.status(db)
            #expect(after.allSatisfy { $0.isApplied && !$0.modifiedSinceApplied })

            #expect(try await migrator.migrate(db).isEmpty)
            let rows: Int? = try await db.query("SELECT count(*) AS n FROM schema_migrations").first?["n"]
            #expect(rows == migrator.migrations.count)
            // Every table of the data model is there.
            for table in ["site", "data_location", "disk_data_location", "s3_data_location", "tape_data_location",
                          "executed_obs_unit", "instrument_module", "raw_data_file", "raw_data_package",
                          "data_transfer_package", "physical_copy", "data_transfer_route", "data_transfer",
                          "data_transfer_log", "long_term_archive_transfer", "staging_job", "staging_request",
                          "operation", "batch_job", "service_heartbeat", "round_robin_state", "submission_profile"] {
                let present: Bool? = try await db.query("SELECT to_regclass(\(table)) IS NOT NULL AS p").first?["p"]
                #expect(present == true, "table \(table) missing")
            }
        }
    }

    @Test func concurrentMigrationsInProcessBothSucceed() async throws {
        try await withTestDatabase { database, check in
            let migrator = try Migrator.bundled()
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let db = try await database.connect()
                        let applied = try await migrator.migrate(db)
                        await db.close()
                        return applied.count
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            // Each migration is applied by exactly one of them: the advisory lock is taken per
            // migration, so the work may be split between runs, but never done twice.
            #expect(results.reduce(0, +) == migrator.migrations.count)
            let rows: Int? = try await check.query("SELECT count(*) AS n FROM schema_migrations").first?["n"]
            #expect(rows == migrator.migrations.count)
        }
    }

    @Test func editedMigrationIsRefused() async throws {
        try await withTestDatabase { _, db in
            let migrator = try Migrator.bundled()
            try await migrator.migrate(db)
            var edited = migrator.migrations
            edited[0] = Migration(version: edited[0].version, name: edited[0].name, sql: edited[0].sql + "\n-- edited")
            let changed = Migrator(migrations: edited)
            #expect(try await changed.status(db).first?.modifiedSinceApplied == true)
            await #expect(throws: MigrationError.self) { try await changed.migrate(db) }
        }
    }

    @Test func failingMigrationLeavesNothingBehind() async throws {
        try await withTestDatabase { _, db in
            let broken = Migrator(migrations: [
                Migration(version: 1, name: "good", sql: "CREATE TABLE a (id int)"),
                Migration(version: 2, name: "bad", sql: "CREATE TABLE b (id int); SELECT no_such_function()"),
            ])
            let error = await #expect(throws: PostgresError.self) { try await broken.migrate(db) }
            #expect(error?.message.contains("migration 2 (bad)") == true)
            let states = try await broken.status(db)
            #expect(states.map(\.isApplied) == [true, false])
            let tableB: Bool? = try await db.query("SELECT to_regclass('b') IS NOT NULL AS p").first?["p"]
            #expect(tableB == false)
        }
    }
}
