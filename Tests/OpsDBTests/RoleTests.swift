import Crypto
import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// Each kind of client may do what it needs and PostgreSQL refuses the rest: a runner acts only on
/// the operations of the batch job whose secret it presents, while that job lives; an instrument
/// registers files only at its own site's SOURCE locations.
@Suite("Roles: least privilege enforced by PostgreSQL", .serialized, .enabled(if: TestEnvironment.runPostgresTests))
struct RoleTests {
    /// The catalogue the attempts run against, made by the owner.
    struct World {
        var ccatSource: Int64, ccatBuffer: Int64, cologneArchive: Int64, usSource: Int64
        var file: Int64, pendingPackage: Int64, archivedPackage: Int64, archiveCopy: Int64, sourceCopy: Int64
        var ownJob: Int64, otherJob: Int64, endedJob: Int64
        var ownOperation: Int64, otherOperation: Int64, endedOperation: Int64
        var request: Int64
        let secrets = (own: Self.secret(), other: Self.secret(), ended: Self.secret())

        static func secret() -> String { SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } }
        static func digest(_ secret: String) -> String { SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined() }
    }

    static func makeWorld(_ db: OpsDB) async throws -> World {
        let ccat = try await db.insertSite(name: "CCAT", shortName: "ccat")
        let cologne = try await db.insertSite(name: "Cologne", shortName: "cologne")
        let us = try await db.insertSite(name: "US", shortName: "us")
        let source = try await db.insertLocation(siteID: ccat.id, name: "instrument", type: .source, storage: .disk(rootPath: "/data/source"))
        let buffer = try await db.insertLocation(siteID: ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
        let archive = try await db.insertLocation(siteID: cologne.id, name: "lta", type: .longTermArchive, storage: .disk(rootPath: "/data/lta"))
        let usSource = try await db.insertLocation(siteID: us.id, name: "instrument", type: .source, storage: .disk(rootPath: "/data/us"))
        let obs = try await db.upsertObservation(obsID: "obs-1")
        let registered = try await db.registerRawDataFile(NewRawDataFile(relativePath: "obs-1/a.fits", sizeBytes: 10, checksum: String(repeating: "a", count: 64),
                                                                       executedObsUnitID: obs.id, sourceLocationID: source.id))
        let c = db.connection
        func id(_ query: PostgresQuery) async throws -> Int64 { try #require(try await c.query(query).first)["id"] }
        let pending = try await id("""
            INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path)
            VALUES ('pkg-pending', \(obs.id), \(source.id), 'PENDING', 'packages/pkg-pending.tar') RETURNING id
            """)
        let archived = try await id("""
            INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum)
            VALUES ('pkg-done', \(obs.id), \(source.id), 'COMPLETED', 'packages/pkg-done.tar', 100, \(String(repeating: "b", count: 64))) RETURNING id
            """)
        let archiveCopy = try await db.insertPhysicalCopy(of: .rawDataPackage(archived), at: archive.id, relativePath: "packages/pkg-done.tar",
                                                          sizeBytes: 100, checksum: String(repeating: "b", count: 64), verified: true)
        let sourceCopy = try #require(try await c.query("SELECT id FROM physical_copy WHERE raw_data_file_id = \(registered.file.id)").first)["id"] as Int64
        var world = World(ccatSource: source.id, ccatBuffer: buffer.id, cologneArchive: archive.id, usSource: usSource.id, file: registered.file.id,
                          pendingPackage: pending, archivedPackage: archived, archiveCopy: archiveCopy.id, sourceCopy: sourceCopy,
                          ownJob: 0, otherJob: 0, endedJob: 0, ownOperation: 0, otherOperation: 0, endedOperation: 0, request: 0)
        func job(_ secret: String, state: String) async throws -> Int64 {
            try await id("""
                INSERT INTO batch_job (scheduler, submit_token, queue, script_path, state, scheduler_job_id, runner_secret_digest)
                VALUES ('local', gen_random_uuid(), 'q', '/jobs/job.sh', \(state)::batch_job_state, '42', \(World.digest(secret))) RETURNING id
                """)
        }
        world.ownJob = try await job(world.secrets.own, state: "RUNNING")
        world.otherJob = try await job(world.secrets.other, state: "RUNNING")
        world.endedJob = try await job(world.secrets.ended, state: "COMPLETED")
        func operation(job: Int64, package: Int64?) async throws -> Int64 {
            try await id("""
                INSERT INTO operation (operation_type, queue, data_location_id, target_location_id, raw_data_package_id, state, batch_job_id)
                VALUES ('RAW_DATA_PACKAGE_CREATION', 'q', \(source.id), \(buffer.id), \(package), 'submitted', \(job)) RETURNING id
                """)
        }
        world.ownOperation = try await operation(job: world.ownJob, package: pending)
        world.otherOperation = try await operation(job: world.otherJob, package: nil)
        world.endedOperation = try await operation(job: world.endedJob, package: nil)
        world.request = try await id("""
            INSERT INTO staging_request (credential, selection, submitted_by, status) VALUES ('munge-credential-secret', '{}', 'alice', 'SUBMITTED') RETURNING id
            """)
        return world
    }

    /// A login role in `group` for this test only; dropped afterwards with the database.
    struct Login {
        let name: String
        let conninfo: String

        func connect(secret: String? = nil) async throws -> PostgresConnection {
            var configuration = PostgresConfiguration(conninfo: conninfo + " user=\(name)", applicationName: "ccat-role-test")
            if let secret { configuration.sessionSettings = [JobSecret.setting: secret] }
            return try await PostgresConnection.connect(configuration)
        }
    }

    static func withWorld(_ body: (World, OpsDB, (String) async throws -> Login) async throws -> Void) async throws {
        try await withTestDatabase { database, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let world = try await makeWorld(db)
            var logins: [String] = []
            do {
                try await body(world, db) { group in
                    let name = "t_\(group.dropFirst(5))_\(UUID().uuidString.prefix(8).lowercased())"
                    try await connection.execute("CREATE ROLE \(identifier: name) LOGIN IN ROLE \(identifier: group)")
                    logins.append(name)
                    return Login(name: name, conninfo: database.conninfo)
                }
            } catch {
                try? await Self.dropRoles(logins, database: database, connection: connection)
                throw error
            }
            try await Self.dropRoles(logins, database: database, connection: connection)
        }
    }

    static func dropRoles(_ names: [String], database: TestDatabase, connection: PostgresConnection) async throws {
        for name in names {
            try await connection.execute("DROP OWNED BY \(identifier: name)")
            // Its sessions are closed by now; the role goes with its grants in this database.
            try await connection.execute("DROP ROLE \(identifier: name)")
        }
    }

    /// What an attempt came to: refused with an error, or run and changed this many rows.
    enum Outcome: Equatable, CustomStringConvertible {
        case refused(String)
        case changed(Int)
        var description: String {
            switch self {
            case .refused(let why): return "refused (\(why))"
            case .changed(let n): return "changed \(n) rows"
            }
        }
        var wasRefused: Bool {
            switch self {
            case .refused: return true
            case .changed(let n): return n == 0
            }
        }
    }

    static func attempt(_ connection: PostgresConnection, _ sql: PostgresQuery) async -> Outcome {
        do {
            return .changed(try await connection.execute(sql))
        } catch let error as PostgresError {
            return .refused(error.sqlState.map { "\($0)" } ?? error.message)
        } catch {
            return .refused("\(error)")
        }
    }

    @Test func aRunnerActsOnlyOnItsOwnJobWhileItLives() async throws {
        try await Self.withWorld { world, db, login in
            let runner = try await login("ccat_runner")
            let own = try await runner.connect(secret: world.secrets.own)
            defer { Task { await own.close() } }
            let ownDB = OpsDB(own)

            // Allowed: claim its job's operation, renew the lease, record the package and its copy
            // at the operation's buffer, complete it.
            let claimed = try #require(try await ownDB.claimNextOperation(batchJobID: world.ownJob, owner: "node:1:job", leaseSeconds: 60))
            #expect(claimed.id == world.ownOperation)
            #expect(try await ownDB.renewLease(operationID: claimed.id, owner: "node:1:job", leaseSeconds: 60))
            try await ownDB.recordRawDataPackageArchive(world.pendingPackage, sizeBytes: 100, checksum: String(repeating: "c", count: 64), manifestJSON: "{}")
            _ = try await ownDB.insertPhysicalCopy(of: .rawDataPackage(world.pendingPackage), at: world.ccatBuffer, relativePath: "packages/pkg-pending.tar",
                                                   sizeBytes: 100, checksum: String(repeating: "c", count: 64), verified: true)
            // Another job's operation: not even claimable with its id.
            #expect(try await ownDB.claimNextOperation(batchJobID: world.otherJob, owner: "node:1:job", leaseSeconds: 60) == nil)

            let refusals: [(String, PostgresQuery)] = [
                ("rewrite the recorded checksum of a package", "UPDATE raw_data_package SET checksum = \(String(repeating: "d", count: 64)) WHERE id = \(world.pendingPackage)"),
                ("rewrite a file record's checksum", "UPDATE raw_data_file SET checksum = \(String(repeating: "d", count: 64)) WHERE id = \(world.file)"),
                ("rewrite a copy's checksum", "UPDATE physical_copy SET checksum = \(String(repeating: "d", count: 64)) WHERE id = \(world.archiveCopy)"),
                ("delete a copy record", "DELETE FROM physical_copy WHERE id = \(world.sourceCopy)"),
                ("mark an archive copy deleted", "UPDATE physical_copy SET status = 'DELETED' WHERE id = \(world.archiveCopy)"),
                ("claim another job's operation", "UPDATE operation SET state = 'running', lease_owner = 'x', lease_expires_at = now() WHERE id = \(world.otherOperation)"),
                ("move an operation into its job", "UPDATE operation SET batch_job_id = \(world.ownJob) WHERE id = \(world.otherOperation)"),
                ("fail another job's operation", "UPDATE operation SET last_error = 'x' WHERE id = \(world.otherOperation)"),
                ("read a scientist's credential", "SELECT credential FROM staging_request WHERE id = \(world.request)"),
                ("register a file", "INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id) SELECT 'b', 'obs-1/b', 1, repeat('e', 64), executed_obs_unit_id, source_location_id FROM raw_data_file LIMIT 1"),
                ("record a copy at a location its job does not work on", "INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, relative_path, size_bytes, checksum) VALUES ('RAW_DATA_PACKAGE', \(world.archivedPackage), \(world.cologneArchive), 'packages/x.tar', 1, repeat('e', 64))"),
                ("change a package its job does not work on", "UPDATE raw_data_package SET status = 'FAILED' WHERE id = \(world.archivedPackage)"),
                ("change the topology", "UPDATE data_location SET active = false WHERE id = \(world.ccatBuffer)"),
                ("change routes or batch jobs", "UPDATE batch_job SET state = 'CANCELLED' WHERE id = \(world.otherJob)"),
                ("read the job secrets' digests", "SELECT runner_secret_digest FROM batch_job"),
            ]
            for (what, sql) in refusals {
                let outcome = await Self.attempt(own, sql)
                #expect(outcome.wasRefused, "a runner could \(what): \(outcome)")
            }
            // Nothing changed behind the refusals.
            let archiveStatus: String = try #require(try await db.connection.query("SELECT status::text AS s FROM physical_copy WHERE id = \(world.archiveCopy)").first)["s"]
            #expect(archiveStatus == "PRESENT")
            let other: String = try #require(try await db.connection.query("SELECT state::text AS s FROM operation WHERE id = \(world.otherOperation)").first)["s"]
            #expect(other == "submitted")

            // The package's checksum, once recorded, stays.
            let rewrite = await Self.attempt(own, "UPDATE raw_data_package SET checksum = \(String(repeating: "f", count: 64)) WHERE id = \(world.pendingPackage)")
            #expect(rewrite == .refused("\(SQLState.insufficientPrivilege)"), "\(rewrite)")

            // Bytes sent on a link count only for a transfer its job is running.
            let bundle = try await db.createDataTransferPackage(name: "b-role", originLocationID: world.ccatBuffer, relativePath: "bundles/b-role.tar", packageIDs: [])
            let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: world.ccatBuffer, destinationLocationID: world.cologneArchive,
                                                           routeID: nil, method: .rsync)
            let moving = try #require(try await db.connection.query("""
                INSERT INTO operation (operation_type, queue, data_location_id, data_transfer_id, state, batch_job_id, lease_owner, lease_expires_at)
                VALUES ('DATA_TRANSFER', 'q', \(world.ccatBuffer), \(transfer.id), 'running', \(world.otherJob), 'x', now() + interval '1 hour') RETURNING id
                """).first)["id"] as Int64
            func moved() async throws -> Int64 {
                try #require(try await db.connection.query("SELECT coalesce(sum(bytes_moved), 0)::bigint AS b FROM link_concurrency").first)["b"]
            }
            try await own.execute("SELECT ccat_link_sent(\(transfer.id), 1000)")
            #expect(try await moved() == 0, "a runner counted bytes for another job's transfer")
            try await db.connection.execute("UPDATE operation SET batch_job_id = \(world.ownJob) WHERE id = \(moving)")
            try await ownDB.recordLinkBytes(transferID: transfer.id, bytes: 1000)
            #expect(try await moved() == 1000)

            try await ownDB.completeOperation(world.ownOperation, owner: "node:1:job", report: OperationReport(bytesProcessed: 100, resultJSON: "{}", logPath: nil))
            let done: String = try #require(try await db.connection.query("SELECT state::text AS s FROM operation WHERE id = \(world.ownOperation)").first)["s"]
            #expect(done == "succeeded")
        }
    }

    @Test func aWrongMissingOrExpiredSecretCanDoNothing() async throws {
        try await Self.withWorld { world, db, login in
            let runner = try await login("ccat_runner")
            for (label, secret) in [("a wrong secret", World.secret()), ("no secret", nil), ("the secret of an ended job", world.secrets.ended),
                                    ("another job's secret", world.secrets.other)] {
                let connection = try await runner.connect(secret: secret)
                let jobDB = OpsDB(connection)
                #expect(try await jobDB.claimNextOperation(batchJobID: world.ownJob, owner: "thief", leaseSeconds: 60) == nil, "\(label) claimed the job's operation")
                #expect(try await jobDB.claimNextOperation(batchJobID: world.endedJob, owner: "thief", leaseSeconds: 60) == nil, "\(label) claimed an ended job's operation")
                let copy = await Self.attempt(connection, "INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, relative_path, size_bytes, checksum) VALUES ('RAW_DATA_PACKAGE', \(world.pendingPackage), \(world.ccatBuffer), 'p', 1, repeat('e', 64))")
                #expect(copy.wasRefused, "\(label) recorded a copy: \(copy)")
                await connection.close()
            }
            let states = try await db.connection.query("SELECT state::text AS s FROM operation WHERE id IN (\(world.ownOperation), \(world.endedOperation))").map { try $0["s"] as String }
            #expect(states == ["submitted", "submitted"])
        }
    }

    @Test func anInstrumentRegistersOnlyAtItsOwnSitesSource() async throws {
        try await Self.withWorld { world, db, login in
            let daq = try await login("ccat_instrument")
            _ = try await db.connection.execute("INSERT INTO instrument_login (login_role, site_id) SELECT \(daq.name), site_id FROM data_location WHERE id = \(world.ccatSource)")
            let connection = try await daq.connect()
            defer { Task { await connection.close() } }
            let daqDB = OpsDB(connection)
            // Allowed: the DAQ hook's registration at its site's SOURCE location.
            let obs = try await daqDB.upsertObservation(obsID: "obs-2")
            let registered = try await daqDB.registerRawDataFile(NewRawDataFile(relativePath: "obs-2/a.fits", sizeBytes: 5, checksum: String(repeating: "1", count: 64),
                                                                                executedObsUnitID: obs.id, sourceLocationID: world.ccatSource))
            #expect(registered.created)
            let refusals: [(String, PostgresQuery)] = [
                ("register at another site's SOURCE", "INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id) VALUES ('a', 'obs-2/x', 1, repeat('2', 64), \(obs.id), \(world.usSource))"),
                ("register at its site's BUFFER", "INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id) VALUES ('a', 'obs-2/y', 1, repeat('2', 64), \(obs.id), \(world.ccatBuffer))"),
                ("record a package copy", "INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, relative_path, size_bytes, checksum) VALUES ('RAW_DATA_PACKAGE', \(world.archivedPackage), \(world.ccatSource), 'p', 1, repeat('2', 64))"),
                ("change a registered file", "UPDATE raw_data_file SET checksum = repeat('3', 64) WHERE id = \(world.file)"),
                ("delete a file record", "DELETE FROM raw_data_file WHERE id = \(registered.file.id)"),
                ("read operations", "SELECT * FROM operation"),
                ("read staging requests", "SELECT * FROM staging_request"),
                ("change the topology", "UPDATE data_location SET active = false WHERE id = \(world.ccatSource)"),
                ("name itself an instrument of another site", "INSERT INTO instrument_login (login_role, site_id) SELECT \(daq.name), site_id FROM data_location WHERE id = \(world.usSource)"),
            ]
            for (what, sql) in refusals {
                let outcome = await Self.attempt(connection, sql)
                #expect(outcome.wasRefused, "an instrument could \(what): \(outcome)")
            }
            // It sees only its own site's files.
            let visible = try await connection.query("SELECT count(*)::int AS n FROM raw_data_file").first?["n"] as Int?
            #expect(visible == 2)
        }
    }

    @Test func theDaemonAndAdminsWorkOnEverything() async throws {
        try await Self.withWorld { world, _, login in
            for group in ["ccat_daemon", "ccat_admin"] {
                let role = try await login(group)
                let connection = try await role.connect()
                #expect(await Self.attempt(connection, "UPDATE operation SET priority = priority WHERE id IN (\(world.ownOperation), \(world.otherOperation))") == .changed(2))
                #expect(await Self.attempt(connection, "UPDATE staging_request SET reason = 'seen' WHERE id = \(world.request)") == .changed(1), "\(group) cannot see staging requests")
                #expect(await Self.attempt(connection, "SELECT credential FROM staging_request") == .changed(1), "\(group) must decode credentials")
                // Nobody but the owner changes the schema.
                #expect(await Self.attempt(connection, "ALTER TABLE operation ADD COLUMN x int").wasRefused)
                #expect(await Self.attempt(connection, "DELETE FROM schema_migrations").wasRefused)
                await connection.close()
            }
        }
    }
}
