import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// The counts `ccat status`, the status page and /metrics show are kept by triggers as rows change
/// (migration 0023); after every kind of change they must be what a fresh count says.
@Suite("Catalogue tally", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct CatalogueTallyTests {
    /// The kept tally agrees with a fresh count, before and after folding.
    static func expectAgreement(_ db: OpsDB, _ step: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let before = try await db.checkCatalogueTally()
        #expect(before.agrees, "\(step): \(before)", sourceLocation: sourceLocation)
        try await db.foldCatalogueTally()
        let after = try await db.checkCatalogueTally()
        #expect(after.agrees, "\(step), folded: \(after)", sourceLocation: sourceLocation)
        // Folded, the tally holds one row per figure.
        let rows: Int = try #require(try await db.connection.query("SELECT count(*)::int AS n FROM catalogue_tally").first)["n"]
        #expect(rows == (try await db.catalogueTally()).count, "\(step): rows left after folding", sourceLocation: sourceLocation)
    }

    /// The archive sites the triggers keep for `package`.
    static func archiveSites(_ connection: PostgresConnection, _ package: RawDataPackage) async throws -> Int {
        try #require(try await connection.query("SELECT archive_sites::int AS n FROM raw_data_package WHERE id = \(package.id)").first)["n"]
    }

    @Test func theTallyFollowsEveryChangeAndAgreesWithAFreshCount() async throws {
        try await withTestDatabase { database, connection in
            let places = try await ArchiveSitesFixture.make(connection)
            let db = places.db
            let checksum = ArchiveSitesFixture.checksum
            var files: [RawDataFile] = []
            for (index, size) in [1000, 2000, 3000].enumerated() { files.append(try await places.registerFile("\(index).fits", bytes: Int64(size))) }
            try await Self.expectAgreement(db, "files registered")
            var status = try await db.pipelineStatus()
            #expect(status.files == 3 && status.fileBytes == 6000, "\(status.files) files, \(status.fileBytes) bytes")
            let sourceCopies = try #require(status.copies.first { $0.location == "ccat:instrument_data" })
            #expect(sourceCopies.present == 3 && sourceCopies.bytesPresent == 6000 && sourceCopies.kind == "RAW_DATA_FILE", "\(sourceCopies)")

            let package = try await places.package(Array(files.prefix(2)))
            let temporary = try await places.copy(of: package, at: places.buffer)
            var archived: [PhysicalCopy] = []
            for archive in places.archives { archived.append(try await places.copy(of: package, at: archive)) }
            try await Self.expectAgreement(db, "packaged and archived")
            status = try await db.pipelineStatus()
            #expect(status.packages == 1 && status.packagesArchivedEverywhere == 1, "\(status.packagesArchivedEverywhere) of \(status.packages)")
            let completed = status.stages.first { $0.stage == "raw_data_package" && $0.status == "COMPLETED" }
            #expect(completed?.count == 1 && completed?.bytes == 4096, "\(String(describing: completed))")

            // A damaged archive copy: no longer archived everywhere; one unverified, the same.
            try await connection.execute("UPDATE physical_copy SET status = 'CORRUPTED' WHERE id = \(archived[1].id)")
            try await Self.expectAgreement(db, "an archive copy corrupted")
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 0)
            try await connection.execute("UPDATE physical_copy SET status = 'PRESENT', verified_at = NULL WHERE id = \(archived[1].id)")
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 0)
            // A fixity pass touches the copies and changes nothing that counts.
            try await connection.execute("UPDATE physical_copy SET verified_at = now() WHERE id = \(archived[1].id)")
            try await connection.execute("UPDATE physical_copy SET fixity_checked_at = now()")
            try await Self.expectAgreement(db, "repaired, then checked")
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 1)

            // The temporary copies go; a file and its copy are removed; a transfer and its bundle.
            try await connection.execute("UPDATE physical_copy SET status = 'DELETED', deleted_at = now() WHERE id = \(temporary.id)")
            try await connection.execute("DELETE FROM physical_copy WHERE raw_data_file_id = \(files[2].id)")
            try await connection.execute("DELETE FROM raw_data_file WHERE id = \(files[2].id)")
            let bundle = try await db.createDataTransferPackage(name: "b-1", originLocationID: places.buffer.id, relativePath: "bundles/b-1.tar",
                                                                packageIDs: [package.id])
            try await connection.execute("UPDATE data_transfer_package SET status = 'COMPLETED', size_bytes = 5000, checksum = \(checksum) WHERE id = \(bundle.id)")
            try await connection.execute("""
                INSERT INTO data_transfer (data_transfer_package_id, origin_location_id, destination_location_id, method, status)
                VALUES (\(bundle.id), \(places.buffer.id), \(places.archives[0].id), 'RSYNC', 'IN_PROGRESS')
                """)
            try await connection.execute("UPDATE data_transfer SET bytes_transferred = 2500")
            try await connection.execute("UPDATE data_transfer SET status = 'COMPLETED', bytes_transferred = 5000")
            try await Self.expectAgreement(db, "deleted, bundled, sent")
            status = try await db.pipelineStatus()
            #expect(status.files == 2 && status.fileBytes == 3000)
            let unpacking = status.stages.first { $0.stage == "unpacking" }
            #expect(unpacking?.status == "PENDING" && unpacking?.count == 1 && unpacking?.bytes == 5000, "\(String(describing: unpacking))")
            let buffer = try #require(status.copies.first { $0.location == "ccat:buffer" })
            #expect(buffer.present == 0 && buffer.deleted == 1, "\(buffer)")
            try await connection.execute("DELETE FROM data_transfer")
            try await Self.expectAgreement(db, "transfer removed")

            // Counts gone wrong (as after a bulk load with triggers off) are found, then counted afresh.
            try await connection.execute("INSERT INTO catalogue_tally VALUES ('raw_data_file', '', 0, '', 5, 500)")
            try await connection.execute("SET session_replication_role = replica")
            try await connection.execute("UPDATE raw_data_package SET archive_sites = 0")
            try await connection.execute("SET session_replication_role = DEFAULT")
            let wrong = try await db.checkCatalogueTally()
            #expect(!wrong.agrees && wrong.packagesWithWrongArchiveSites == 1 && wrong.examplePackageIds == [package.id], "\(wrong)")
            // Files off by the 5 added; packages kept at 2 sites where the column (changed behind the triggers) now says 0.
            #expect(wrong.differences.count == 3, "\(wrong.differences)")
            #expect(wrong.differences.contains { $0.kept?.subject == "package_archive_sites" && $0.kept?.state == "2" && $0.counted == nil })
            #expect(wrong.differences.contains { $0.kept?.subject == "raw_data_file" && $0.kept?.rows == 7 && $0.counted?.rows == 2 }, "\(wrong.differences)")
            // The admin's command says so, and exits with 1; without --check it counts afresh.
            let check = try await runExecutable("ccat", ["db", "recount", "--check", "--database", database.conninfo])
            #expect(check.status == 1 && check.stdout.contains("raw_data_file") && check.stdout.contains("1 package keeps a wrong number of archive sites")
                    && check.stdout.contains("run 'ccat db recount'"), "\(check.stdout)\n\(check.stderr)")
            let recount = try await runExecutable("ccat", ["db", "recount", "--json", "--database", database.conninfo])
            #expect(recount.status == 0 && recount.stdout.contains(#""agrees" : true"#), "\(recount.stdout)\n\(recount.stderr)")
            try await Self.expectAgreement(db, "recounted")
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 1)
        }
    }

    /// Two sites verify their copies of one package at the same time: each count waits for the
    /// other's commit, and the package ends up counted at both.
    @Test func concurrentArchiveCopiesOfOnePackageAreBothCounted() async throws {
        try await withTestDatabase { database, connection in
            let places = try await ArchiveSitesFixture.make(connection)
            let db = places.db
            let checksum = ArchiveSitesFixture.checksum
            let package = try await places.package([try await places.registerFile("a.fits", bytes: 10)])
            let other = try await database.connect()
            defer { Task { await other.close() } }
            func insertCopy(_ connection: PostgresConnection, at location: DataLocation) async throws {
                try await connection.execute("""
                    INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, relative_path, size_bytes, checksum, verified_at)
                    VALUES ('RAW_DATA_PACKAGE', \(package.id), \(location.id), 'packages/obs-1.tar', 4096, \(checksum), now())
                    """)
            }
            try await connection.execute("BEGIN")
            try await insertCopy(connection, at: places.archives[0])
            try await other.execute("BEGIN")
            // The second insert waits inside its trigger for the first transaction's lock on the package.
            let second = Task { try await insertCopy(other, at: places.archives[1]) }
            let waiting = try await eventually(within: .seconds(120), every: .milliseconds(100)) {
                let row = try await connection.query("""
                    SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                    """).first
                return try row?["n"] as Int? == 1
            }
            #expect(waiting, "the second insert never waited for the first")
            try await connection.execute("COMMIT")
            try await second.value
            try await other.execute("COMMIT")
            #expect(try await Self.archiveSites(connection, package) == 2)
            try await Self.expectAgreement(db, "two sites at once")
        }
    }

    /// An archive site taken out of service (its location deactivated, its copies kept) no longer
    /// counts towards "archived at every site", and counts again when it comes back (migration 0024).
    @Test func aRetiredArchiveSiteNoLongerCounts() async throws {
        try await withTestDatabase { _, connection in
            let places = try await ArchiveSitesFixture.make(connection)
            let db = places.db
            let spareSite = try await db.insertSite(name: "spare", shortName: "spare")
            let spare = try await db.insertLocation(siteID: spareSite.id, name: "long_term_archive", type: .longTermArchive,
                                                    storage: .disk(rootPath: "/data/spare/archive"))
            let package = try await places.package([try await places.registerFile("a.fits", bytes: 10)])
            try await places.copy(of: package, at: places.archives[0])
            try await places.copy(of: package, at: spare)
            func sites() async throws -> Int { try await Self.archiveSites(connection, package) }
            // Cologne and the spare site of three: not everywhere.
            #expect(try await sites() == 2)
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 0)

            // The spare site retired: Cologne and the US remain, and the US has no copy.
            try await connection.execute("UPDATE data_location SET active = false WHERE id = \(spare.id)")
            #expect(try await sites() == 1)
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 0, "held at one of the two active sites")
            try await Self.expectAgreement(db, "an archive site retired")

            try await places.copy(of: package, at: places.archives[1])
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 1)
            // Back in service: three of three.
            try await connection.execute("UPDATE data_location SET active = true WHERE id = \(spare.id)")
            #expect(try await sites() == 3)
            #expect(try await db.pipelineStatus().packagesArchivedEverywhere == 1)
            // Another column of the location changes nothing that counts.
            try await connection.execute("UPDATE data_location SET name = 'long_term_archive_2' WHERE id = \(spare.id)")
            #expect(try await sites() == 3)
            try await Self.expectAgreement(db, "an archive site back in service")
        }
    }

    /// Migration 0024 counts again the packages held in archives deactivated before it.
    @Test func migration0024RecountsPackagesInArchivesRetiredBeforeIt() async throws {
        try await withTestDatabase { _, connection in
            let places = try await ArchiveSitesFixture.make(connection, through: 23)
            let package = try await places.package([try await places.registerFile("a.fits", bytes: 10)])
            for archive in places.archives { try await places.copy(of: package, at: archive) }
            try await connection.execute("UPDATE data_location SET active = false WHERE id = \(places.archives[1].id)")
            func sites() async throws -> Int { try await Self.archiveSites(connection, package) }
            #expect(try await sites() == 2, "before 0024 the retired archive's copy counted")
            try await Migrator.bundled().migrate(connection)
            #expect(try await sites() == 1)
            try await Self.expectAgreement(places.db, "migrated to 0024")
        }
    }
}
