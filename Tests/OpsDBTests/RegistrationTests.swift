import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("Registration rules (pure logic)")
struct RegistrationRuleTests {
    @Test func pathsPackagingWouldRefuseAreRefusedAtRegistration() {
        let refused = ["", "/abs/a.fits", "a.fits", "obs//a.fits", "./obs/a.fits", "obs/./a.fits", "obs/a.fits/", "obs/../a.fits",
                       "obs/new\nline.fits", "obs/tab\there", "obs/" + String(repeating: "x", count: 256),
                       "obs/" + Array(repeating: String(repeating: "d", count: 200), count: 6).joined(separator: "/")]
        for path in refused {
            #expect(throws: RegistrationRules.Violation.self, "\(path.debugDescription)") { try RegistrationRules.checkRelativePath(path) }
        }
        for path in ["obs-1/scan 1.fits", "obs-1/ümlaut/日本.raw", "2026/obs1/quote's \"x\".dat"] {
            #expect(throws: Never.self) { try RegistrationRules.checkRelativePath(path) }
        }
    }

    @Test func identifiersFitEveryNameDerivedFromThem() {
        for obsID in ["", String(repeating: "o", count: 2680), "a b", "obs/1", "-obs", "obs\n"] {
            #expect(throws: RegistrationRules.Violation.self, "\(obsID.prefix(20).debugDescription)") { try RegistrationRules.checkObservationID(obsID) }
        }
        #expect(throws: Never.self) { try RegistrationRules.checkObservationID("obs-2026-0412_a.b+c:d") }
        #expect(throws: Never.self) { try RegistrationRules.checkObservationID(String(repeating: "o", count: 128)) }
        for instrument in ["", "a/b/c", "prime cam", "x/", String(repeating: "i", count: 65)] {
            #expect(throws: RegistrationRules.Violation.self, "\(instrument)") { try RegistrationRules.checkInstrument(instrument) }
        }
        #expect(throws: Never.self) { try RegistrationRules.checkInstrument("primecam/mkid-1") }
    }
}

@Suite("ccat files register and scan against a real PostgreSQL")
struct RegistrationCommandTests {
    /// A migrated database with a SOURCE location whose root is a scratch directory.
    static func withSource(_ body: (TestDatabase, OpsDB, URL) async throws -> Void) async throws {
        try await withTestDatabase { database, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let root = try testScratchDirectory("source")
            let site = try await db.insertSite(name: "CCAT", shortName: "ccat")
            _ = try await db.insertLocation(siteID: site.id, name: "instrument_data", type: .source, storage: .disk(rootPath: root.path))
            try await body(database, db, root)
        }
    }

    static func write(_ root: URL, _ path: String, bytes: Int = 10) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 7, count: bytes).write(to: url)
    }

    static func register(_ database: TestDatabase, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runExecutable("ccat", ["files", "register", "ccat:instrument_data", "--database", database.conninfo] + arguments)
    }

    static let sha = String(repeating: "ab", count: 32)

    /// What the packaging manager does with the registered files: one package of them all, named
    /// as the manager names it, and its packaging operation.
    static func packageEverything(_ db: OpsDB) async throws -> (source: DataLocation, files: [RawDataFile], package: RawDataPackage, operation: OperationRecord) {
        let source = try #require(try await db.location(siteShortName: "ccat", name: "instrument_data"))
        let files = try await db.unpackagedFiles(sourceLocationID: source.id, limit: 10)
        let package = try await db.createRawDataPackage(name: "obs-1-instrument_data-\(files[0].id)", observationID: files[0].executedObsUnitID,
                                                        sourceLocationID: source.id, relativePath: "packages/obs-1.tar", fileIDs: files.map(\.id))
        let operation = try #require(try await db.createOperation(.rawDataPackageCreation, queue: "q", locationID: source.id, target: .rawDataPackage(package.id)))
        return (source, files, package, operation)
    }

    static func registeredCount(_ db: OpsDB) async throws -> Int {
        try await db.connection.query("SELECT count(*)::int AS n FROM raw_data_file").first?["n", as: Int.self] ?? -1
    }

    @Test func registrationRefusesWhatPackagingCouldNotReadSafely() async throws {
        try await Self.withSource { database, db, root in
            try Self.write(root, "obs-1/good.fits")
            try Self.write(root, "top-level.fits")
            try Self.write(root, "obs-1/short.fits", bytes: 3)
            // A link to a file the runner can read but nobody meant to archive.
            let secret = try testScratchDirectory("secret").appendingPathComponent("key")
            try Data("private".utf8).write(to: secret)
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("obs-1/link.fits").path, withDestinationPath: secret.path)
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("obs-linked").path, withDestinationPath: root.appendingPathComponent("obs-1").path)

            let cases: [(arguments: [String], says: String)] = [
                (["--path", "obs-1/link.fits", "--size", "7", "--obs-id", "obs-1"], "is a symbolic link"),
                (["--path", "obs-linked/good.fits", "--size", "10", "--obs-id", "obs-1"], "is a symbolic link"),
                (["--path", "obs-1/missing.fits", "--size", "10", "--obs-id", "obs-1"], "does not exist"),
                (["--path", "obs-1/short.fits", "--size", "10", "--obs-id", "obs-1"], "has 3 bytes"),
                (["--path", "top-level.fits", "--size", "10", "--obs-id", "obs-1"], "not inside an observation directory"),
                (["--path", "obs-1//good.fits", "--size", "10", "--obs-id", "obs-1"], "empty component"),
                (["--path", "obs-1/good.fits", "--size", "10", "--obs-id", String(repeating: "o", count: 2680)], "at most 128"),
            ]
            for (arguments, says) in cases {
                let result = try await Self.register(database, arguments + ["--sha256", Self.sha])
                #expect(result.status != 0, "\(arguments): accepted")
                #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
                // The refusal never echoes what a link points to.
                #expect(!result.stderr.contains("private"))
            }
            #expect(try await Self.registeredCount(db) == 0)
            let good = try await Self.register(database, ["--path", "obs-1/good.fits", "--size", "10", "--obs-id", "obs-1", "--sha256", Self.sha])
            #expect(good.status == 0, "\(good.stderr)")
            #expect(try await Self.registeredCount(db) == 1)
        }
    }

    @Test func aBatchWithWindowsLineEndingsRegistersAndABadLineRegistersNothing() async throws {
        try await Self.withSource { database, db, root in
            try Self.write(root, "obs-1/a.fits")
            try Self.write(root, "obs-1/b.fits")
            let batch = try testScratchDirectory("batch").appendingPathComponent("files.tsv")
            try "obs-1/a.fits\t10\t\(Self.sha)\tobs-1\r\nobs-1/b.fits\t10\t\(Self.sha)\tobs-1\tprimecam/mkid-1\r\n".write(to: batch, atomically: true, encoding: .utf8)
            let crlf = try await Self.register(database, ["--batch", batch.path])
            #expect(crlf.status == 0, "\(crlf.stderr)")
            #expect(try await Self.registeredCount(db) == 2)

            try Self.write(root, "obs-2/c.fits")
            try "obs-2/c.fits\t10\t\(Self.sha)\tobs-2\nobs-2/d.fits\t10\t\(Self.sha)\tobs 2\n".write(to: batch, atomically: true, encoding: .utf8)
            let bad = try await Self.register(database, ["--batch", batch.path])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("line 2 of"), "\(bad.stderr)")
            #expect(try await Self.registeredCount(db) == 2)
        }
    }

    @Test func scanSaysWhichFilesItLeftUnregistered() async throws {
        try await Self.withSource { database, db, root in
            try Self.write(root, "obs-1/a.fits")
            try Self.write(root, "obs-1/new\nline.fits")
            // Links are never followed: neither to a file outside the root nor to a directory.
            let outside = try testScratchDirectory("outside").appendingPathComponent("secret.fits")
            try Data("private".utf8).write(to: outside)
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("obs-1/link.fits").path, withDestinationPath: outside.path)
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("obs-2").path, withDestinationPath: root.appendingPathComponent("obs-1").path)
            // A name that is not UTF-8 (byte 0xFF), as an instrument with another locale might write.
            let latin1 = Array((root.path + "/obs-1/caf").utf8).map { CChar(bitPattern: $0) } + [CChar(bitPattern: 0xFF), 0]
            let fd = open(latin1, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            #expect(fd >= 0)
            close(fd)
            let scan = try await runExecutable("ccat", ["files", "scan", "ccat:instrument_data", "--settle", "0", "--database", database.conninfo])
            #expect(scan.status == 0, "\(scan.stderr)")
            #expect(scan.stdout.contains("1 newly registered"), "\(scan.stdout)")
            #expect(scan.stdout.contains("4 files not registered"), "\(scan.stdout)")
            for (path, reason) in [("obs-1/new\\nline.fits", "contains a control character"), ("obs-1/link.fits", "a symbolic link"),
                                   ("obs-2", "a symbolic link"), ("obs-1/caf\u{FFFD}", "the name is not valid UTF-8")] {
                #expect(scan.stdout.contains("\"\(path)\": \(reason)"), "\(path): \(scan.stdout)")
            }
            #expect(try await Self.registeredCount(db) == 1)
        }
    }

    /// A file registered by mistake stalls its observation; unregistering it withdraws the
    /// package and lets the other files be packaged again. Written data cannot be withdrawn.
    @Test func aMistakenRegistrationCanBeWithdrawnUntilItsDataIsWritten() async throws {
        try await Self.withSource { database, db, root in
            for name in ["a", "b", "gone"] { try Self.write(root, "obs-1/\(name).fits") }
            let batch = try testScratchDirectory("batch").appendingPathComponent("files.tsv")
            try ["a", "b", "gone"].map { "obs-1/\($0).fits\t10\t\(Self.sha)\tobs-1\n" }.joined().write(to: batch, atomically: true, encoding: .utf8)
            #expect(try await Self.register(database, ["--batch", batch.path]).status == 0)
            try FileManager.default.removeItem(at: root.appendingPathComponent("obs-1/gone.fits"))
            // Packaged, and its packaging went to intervention because a file is missing.
            let (source, files, package, operation) = try await Self.packageEverything(db)
            try await db.connection.execute("UPDATE operation SET state = 'intervention' WHERE id = \(operation.id)")

            let withdrawn = try await runExecutable("ccat", ["files", "unregister", "ccat:instrument_data", "--path", "obs-1/gone.fits", "--json", "--database", database.conninfo])
            #expect(withdrawn.status == 0, "\(withdrawn.stderr)")
            #expect(withdrawn.stdout.contains("obs-1/gone.fits") && withdrawn.stdout.contains("-withdrawn-\(package.id)"), "\(withdrawn.stdout)")
            #expect(try await Self.registeredCount(db) == 2)
            #expect(try await db.unpackagedFiles(sourceLocationID: source.id, limit: 10).map(\.relativePath) == ["obs-1/a.fits", "obs-1/b.fits"])
            #expect(try await db.operation(id: operation.id)?.state == .cancelled)
            // The manager can package the rest under the original name.
            _ = try await db.createRawDataPackage(name: package.name, observationID: files[0].executedObsUnitID, sourceLocationID: source.id,
                                                  relativePath: "packages/obs-1.tar", fileIDs: files.prefix(2).map(\.id))
        }
    }

    @Test func writtenDataCannotBeUnregistered() async throws {
        try await Self.withSource { database, db, root in
            try Self.write(root, "obs-1/a.fits")
            #expect(try await Self.register(database, ["--path", "obs-1/a.fits", "--size", "10", "--obs-id", "obs-1", "--sha256", Self.sha]).status == 0)
            let (source, _, package, operation) = try await Self.packageEverything(db)
            _ = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "q", locationID: source.id,
                                            operationType: .rawDataPackageCreation, scriptPath: "/tmp/job.sh", stdoutPath: "/tmp/job.out",
                                            stderrPath: "/tmp/job.err", operationIDs: [operation.id])
            try await db.connection.execute("UPDATE operation SET state = 'submitted' WHERE id = \(operation.id)")
            let running = try await runExecutable("ccat", ["files", "unregister", "ccat:instrument_data", "--obs-id", "obs-1", "--database", database.conninfo])
            #expect(running.status != 0 && running.stderr.contains("is being written by operation \(operation.id)"), "\(running.stderr)")
            try await db.connection.execute("UPDATE operation SET state = 'succeeded' WHERE id = \(operation.id)")
            try await db.recordRawDataPackageArchive(package.id, sizeBytes: 10, checksum: Self.sha, manifestJSON: "[]")
            let written = try await runExecutable("ccat", ["files", "unregister", "ccat:instrument_data", "--obs-id", "obs-1", "--database", database.conninfo])
            #expect(written.status != 0 && written.stderr.contains("can no longer be unregistered"), "\(written.stderr)")
            #expect(try await Self.registeredCount(db) == 1)
            let unknown = try await runExecutable("ccat", ["files", "unregister", "ccat:instrument_data", "--path", "obs-1/nope.fits", "--database", database.conninfo])
            #expect(unknown.status != 0 && unknown.stderr.contains("not registered at this location"), "\(unknown.stderr)")
        }
    }

    /// The schema holds the same limits for any client that writes rows itself.
    @Test func theSchemaRefusesIdentifiersBeyondTheLimits() async throws {
        try await Self.withSource { _, db, _ in
            let long = String(repeating: "o", count: 129)
            let error = await #expect(throws: PostgresError.self) {
                try await db.connection.execute("INSERT INTO executed_obs_unit (obs_id) VALUES (\(long))")
            }
            #expect(error?.sqlState?.rawValue == "23514")
        }
    }
}
