import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// Runs `body` against a freshly migrated database with a small topology.
func withOpsDB(_ body: (OpsDB, Fixture) async throws -> Void) async throws {
    try await withTestDatabase { _, connection in
        try await Migrator.bundled().migrate(connection)
        let db = OpsDB(connection)
        try await body(db, try await Fixture.make(db))
    }
}

struct Fixture {
    var ccat: Site
    var cologne: Site
    var source: DataLocation
    var buffer: DataLocation
    var archive: DataLocation
    var observation: ExecutedObsUnit

    static func make(_ db: OpsDB) async throws -> Fixture {
        let ccat = try await db.insertSite(name: "CCAT Observatory", shortName: "ccat", location: "Cerro Chajnantor")
        let cologne = try await db.insertSite(name: "Universität zu Köln", shortName: "cologne")
        let source = try await db.insertLocation(siteID: ccat.id, name: "primecam_raw_data", type: .source, storage: .disk(rootPath: "/data/primecam"))
        let buffer = try await db.insertLocation(siteID: cologne.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
        let archive = try await db.insertLocation(
            siteID: cologne.id, name: "long_term_archive", type: .longTermArchive,
            storage: .s3(endpointURL: "http://127.0.0.1:9000", bucket: "ccat-archive", region: "eu-west-1", prefix: "lta/",
                         credentialsSource: "env:CCAT_S3_COLOGNE", pathStyle: true))
        let observation = try await db.upsertObservation(obsID: "obs-2026-0001", sourceName: "Orion")
        return Fixture(ccat: ccat, cologne: cologne, source: source, buffer: buffer, archive: archive, observation: observation)
    }

    func file(_ path: String, size: Int64 = 10) -> NewRawDataFile {
        NewRawDataFile(relativePath: path, sizeBytes: size, checksum: String(repeating: "ab", count: 32),
                       executedObsUnitID: observation.id, sourceLocationID: source.id)
    }
}

@Suite("Ops database constraints and queries", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct SchemaTests {
    /// The SECURITY DEFINER functions run with their owner's rights: only the roles granted them
    /// may call them, never PUBLIC (every role that can connect).
    @Test func ownerRightsFunctionsAreNotExecutableByPublic() async throws {
        try await withOpsDB { db, _ in
            let open = try await db.connection.query("""
                SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public' AND p.prosecdef AND has_function_privilege('public', p.oid, 'EXECUTE')
                """).map { try $0["proname", as: String.self] }
            #expect(open.isEmpty, "executable by PUBLIC: \(open)")
            let definers = try await db.connection.query("""
                SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.prosecdef
                """).first?["n", as: Int.self]
            #expect((definers ?? 0) >= 3)
        }
    }

    @Test func siteAndLocationUniqueness() async throws {
        try await withOpsDB { db, fx in
            let duplicate = await #expect(throws: PostgresError.self) { try await db.insertSite(name: "Again", shortName: "ccat") }
            #expect(duplicate?.sqlState == .uniqueViolation)
            // A location name is unique within its site, not across sites.
            let clash = await #expect(throws: PostgresError.self) {
                try await db.insertLocation(siteID: fx.cologne.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/other"))
            }
            #expect(clash?.sqlState == .uniqueViolation)
            _ = try await db.insertLocation(siteID: fx.ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/ccat-buffer"))
            // The failed insert left no half-made location behind.
            #expect(try await db.locations().count == 4)
        }
    }

    @Test func foreignKeysAndChecks() async throws {
        try await withOpsDB { db, fx in
            let orphan = await #expect(throws: PostgresError.self) {
                try await db.insertLocation(siteID: 999_999, name: "nowhere", type: .buffer, storage: .disk(rootPath: "/x"))
            }
            #expect(orphan?.sqlState == .foreignKeyViolation)
            for bad in ["CCAT", "1abc", "has space", "has-dash", ""] {
                let error = await #expect(throws: PostgresError.self) { try await db.insertSite(name: "x", shortName: bad) }
                #expect(error?.sqlState == .checkViolation, "short name '\(bad)' must be refused")
            }
            let negative = await #expect(throws: PostgresError.self) {
                try await db.insertLocation(siteID: fx.ccat.id, name: "negative", type: .buffer, storage: .disk(rootPath: "/x"), priority: -1)
            }
            #expect(negative?.sqlState == .checkViolation)
            let relative = await #expect(throws: PostgresError.self) {
                try await db.insertLocation(siteID: fx.ccat.id, name: "relative", type: .buffer, storage: .disk(rootPath: "data/x"))
            }
            #expect(relative?.sqlState == .checkViolation)
            // A storage row must match the location's storage type.
            let mismatch = await #expect(throws: PostgresError.self) {
                try await db.connection.execute("INSERT INTO disk_data_location (data_location_id, root_path) VALUES (\(fx.archive.id), '/x')")
            }
            #expect(mismatch?.sqlState == .foreignKeyViolation)
            // Credentials are referenced, never stored.
            let secret = await #expect(throws: PostgresError.self) {
                try await db.connection.execute("UPDATE s3_data_location SET credentials_source = 'AKIAEXAMPLE' WHERE data_location_id = \(fx.archive.id)")
            }
            #expect(secret?.sqlState == .checkViolation)
        }
    }

    @Test func locationsAndStorageRoundTrip() async throws {
        try await withOpsDB { db, fx in
            #expect(try await db.site(shortName: "cologne") == fx.cologne)
            #expect(try await db.sites().map(\.shortName) == ["ccat", "cologne"])
            #expect(try await db.location(siteShortName: "cologne", name: "long_term_archive") == fx.archive)
            #expect(try await db.storage(of: fx.archive) == .s3(endpointURL: "http://127.0.0.1:9000", bucket: "ccat-archive", region: "eu-west-1",
                                                                 prefix: "lta/", credentialsSource: "env:CCAT_S3_COLOGNE", pathStyle: true))
            #expect(try await db.storage(of: fx.buffer) == .disk(rootPath: "/data/buffer"))
            try await db.connection.execute("UPDATE data_location SET active = false WHERE id = \(fx.buffer.id)")
            #expect(try await db.locations(activeOnly: true).map(\.id).contains(fx.buffer.id) == false)
            let updated = try #require(try await db.location(id: fx.buffer.id))
            #expect(updated.updatedAt > fx.buffer.updatedAt)
        }
    }

    @Test func rawFilesRegisterOnceAndRejectUnsafePaths() async throws {
        try await withOpsDB { db, fx in
            let first = try await db.registerRawDataFile(fx.file("2026/obs1/scan 01 'quoted'.fits"))
            #expect(first.created)
            #expect(first.file.filename == "scan 01 'quoted'.fits")
            let again = try await db.registerRawDataFile(fx.file("2026/obs1/scan 01 'quoted'.fits"))
            #expect(!again.created)
            #expect(again.file.id == first.file.id)
            _ = try await db.registerRawDataFile(fx.file("2026/obs1/scan02.fits"))
            #expect(try await db.unpackagedFiles(sourceLocationID: fx.source.id, limit: 10).count == 2)
            #expect(try await db.unpackagedFiles(sourceLocationID: fx.source.id, limit: 1).count == 1)
            for unsafe in ["/etc/passwd", "../escape.fits", "a/../../b.fits"] {
                let error = await #expect(throws: PostgresError.self) { try await db.registerRawDataFile(fx.file(unsafe)) }
                #expect(error?.sqlState == .checkViolation, "path '\(unsafe)' must be refused")
            }
            var badChecksum = fx.file("2026/obs1/scan03.fits")
            badChecksum.checksum = "not-hex"
            let error = await #expect(throws: PostgresError.self) { try await db.registerRawDataFile(badChecksum) }
            #expect(error?.sqlState == .checkViolation)
        }
    }

    @Test func physicalCopiesKeepOneLiveCopyAndTheirHistory() async throws {
        try await withOpsDB { db, fx in
            // Registering a file records its copy at the SOURCE, unverified unless we hashed it.
            let file = try await db.registerRawDataFile(fx.file("obs1/a.fits")).file
            let copy = try #require(try await db.physicalCopies(of: .rawDataFile(file.id)).first)
            #expect(copy.status == .present && copy.dataLocationID == fx.source.id && copy.relativePath == "obs1/a.fits")
            #expect(copy.checksum == file.checksum && copy.verifiedAt == nil)
            let scanned = try await db.registerRawDataFile(fx.file("obs1/b.fits"), verified: true).file
            #expect(try await db.physicalCopies(of: .rawDataFile(scanned.id)).first?.verifiedAt != nil)
            let second = await #expect(throws: PostgresError.self) {
                try await db.insertPhysicalCopy(of: .rawDataFile(file.id), at: fx.source.id, relativePath: "obs1/a.fits",
                                                sizeBytes: 10, checksum: nil, verified: false)
            }
            #expect(second?.sqlState == .uniqueViolation)
            #expect(try await db.markPhysicalCopyDeleted(id: copy.id))
            #expect(try await db.markPhysicalCopyDeleted(id: copy.id) == false)
            // Once deleted, the object may come back to the location; the deleted row stays as history.
            _ = try await db.insertPhysicalCopy(of: .rawDataFile(file.id), at: fx.source.id, relativePath: "obs1/a.fits",
                                                sizeBytes: 10, checksum: nil, verified: false)
            let trail = try await db.physicalCopies(of: .rawDataFile(file.id))
            #expect(trail.map(\.status) == [.deleted, .present])
            #expect(trail.first?.deletedAt != nil)
        }
    }

    @Test func oneLiveOperationPerTarget() async throws {
        try await withOpsDB { db, fx in
            let package = try #require(try await db.connection.query("""
                INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, relative_path)
                VALUES ('obs-2026-0001_primecam', \(fx.observation.id), \(fx.source.id), 'raw_data_packages/obs-2026-0001_primecam.tar')
                RETURNING id
                """).first?.decode(Int64.self, column: "id"))
            let queue = "ccat_primecam_raw_data_raw_data_package_creation"
            let first = try #require(try await db.createOperation(.rawDataPackageCreation, queue: queue, locationID: fx.source.id,
                                                                  target: .rawDataPackage(package), sizeHintBytes: 1000))
            #expect(first.state == .pending)
            #expect(first.attempts == 0)
            #expect(try await db.createOperation(.rawDataPackageCreation, queue: queue, locationID: fx.source.id, target: .rawDataPackage(package)) == nil)
            // Once finished, new work on the same target is allowed again.
            try await db.connection.execute("UPDATE operation SET state = 'cancelled' WHERE id = \(first.id)")
            #expect(try await db.createOperation(.rawDataPackageCreation, queue: queue, locationID: fx.source.id, target: .rawDataPackage(package)) != nil)
            // Submitted operations belong to a batch job; running ones have a lease holder and expiry
            // (a batch job's runner, or an admin's `ccat-runner exec`).
            let changes: [PostgresQuery] = ["state = 'submitted'", "state = 'running'", "state = 'running', lease_expires_at = now()",
                                            "state = 'running', lease_owner = 'x'"]
            for (index, change) in changes.enumerated() {
                let orphan = await #expect(throws: PostgresError.self) {
                    try await db.connection.execute("UPDATE operation SET \(change) WHERE raw_data_package_id = \(package) AND state = 'pending'")
                }
                #expect(orphan?.sqlState == .checkViolation, "change \(index)")
            }
            try await db.connection.execute("""
                UPDATE operation SET state = 'running', lease_owner = 'exec by admin', lease_expires_at = now() + interval '1 minute'
                WHERE raw_data_package_id = \(package) AND state = 'pending'
                """)
        }
    }

    @Test func archiveTransferNeedsInterventionAfterThreeAttempts() async throws {
        try await withOpsDB { db, fx in
            let package = try #require(try await db.connection.query("""
                INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, relative_path)
                VALUES ('p1', \(fx.observation.id), \(fx.source.id), 'p1.tar') RETURNING id
                """).first?.decode(Int64.self, column: "id"))
            let transferID = try #require(try await db.connection.query("""
                INSERT INTO long_term_archive_transfer (raw_data_package_id, origin_location_id, destination_location_id)
                VALUES (\(package), \(fx.buffer.id), \(fx.archive.id)) RETURNING id
                """).first?.decode(Int64.self, column: "id"))
            func needsIntervention() async throws -> Bool? {
                try await db.connection.query("SELECT requires_intervention FROM long_term_archive_transfer WHERE id = \(transferID)").first?["requires_intervention"]
            }
            try await db.connection.execute("UPDATE long_term_archive_transfer SET attempts = 2, status = 'FAILED' WHERE id = \(transferID)")
            #expect(try await needsIntervention() == false)
            try await db.connection.execute("UPDATE long_term_archive_transfer SET attempts = 3 WHERE id = \(transferID)")
            #expect(try await needsIntervention() == true)
            try await db.connection.execute("UPDATE long_term_archive_transfer SET status = 'COMPLETED' WHERE id = \(transferID)")
            #expect(try await needsIntervention() == false)
        }
    }

    @Test func routeShapesAreChecked() async throws {
        try await withOpsDB { db, fx in
            let relayWithoutSite = await #expect(throws: PostgresError.self) {
                try await db.connection.execute("""
                    INSERT INTO data_transfer_route (name, origin_site_id, destination_site_id, route_type)
                    VALUES ('r', \(fx.ccat.id), \(fx.cologne.id), \(RouteType.relay))
                    """)
            }
            #expect(relayWithoutSite?.sqlState == .checkViolation)
            let loop = await #expect(throws: PostgresError.self) {
                try await db.connection.execute("""
                    INSERT INTO data_transfer_route (name, origin_site_id, destination_site_id, route_type)
                    VALUES ('r', \(fx.ccat.id), \(fx.ccat.id), \(RouteType.direct))
                    """)
            }
            #expect(loop?.sqlState == .checkViolation)
        }
    }
}
