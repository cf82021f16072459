import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Processes
import Storage
import Testing
import TestSupport

/// One observation archived at two sites: Cologne's archive on disk, the US site's in S3. Each
/// archive holds the raw data package and, as copies of their own, the package's four files (so a
/// listing with one copy damaged is never empty). Every step runs through `ccat-runner exec`.
struct ArchiveSites {
    let fixture: PackagingFixture
    let bucket: String
    let disk: DataLocation
    let s3: DataLocation
    var db: OpsDB { fixture.db }
    var diskRoot: URL { fixture.work.appendingPathComponent("cologne/lta") }

    /// `diskIntegrity` is the disk archive's `integrity:` block (YAML flow mapping), if any.
    static func with(fileSize: Int = 100_000, diskIntegrity: String? = nil, _ body: (ArchiveSites) async throws -> Void) async throws {
        let (bucket, s3Storage) = try TestArchiveBucket.create("ccat-fixity")
        let sites = """
              - short_name: cologne
                name: University of Cologne
                locations:
                  - name: lta
                    type: LONG_TERM_ARCHIVE
                    storage: {disk: {root: "{work}/cologne/lta"}}
            \(diskIntegrity.map { "        integrity: \($0)" } ?? "")
                  - name: ramses_processing
                    type: PROCESSING
                    storage: {disk: {root: "{work}/cologne/processing"}}
              - short_name: us
                name: US archive
                locations:
                  - name: lta
                    type: LONG_TERM_ARCHIVE
                    \(s3Storage)
            """
        try await PackagingFixture.with(fileSize: fileSize, moreSites: sites) { fixture in
            for directory in ["cologne/lta", "cologne/processing"] {
                try FileManager.default.createDirectory(at: fixture.work.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
            let db = fixture.db
            let disk = try #require(try await db.location(siteShortName: "cologne", name: "lta"))
            let s3 = try #require(try await db.location(siteShortName: "us", name: "lta"))
            let sites = ArchiveSites(fixture: fixture, bucket: bucket, disk: disk, s3: s3)
            try await sites.archiveEverything()
            try await body(sites)
        }
    }

    var environment: [String: String] { TestArchiveBucket.environment(fixture.environment) }

    var s3Store: S3Store { try! TestArchiveBucket.store(bucket) }

    var diskStore: DiskStore { DiskStore(name: "cologne:lta", root: diskRoot.path) }

    /// Packages the observation, archives the package into both archives, and adds each file.
    func archiveEverything() async throws {
        let packaged = try await exec(fixture.operation)
        #expect(packaged.status == 0, "\(packaged.stderr)")
        let buffer = try #require(try await db.location(siteShortName: "ccat", name: "buffer"))
        for archive in [disk, s3] {
            let transfer = try await db.createLongTermArchiveTransfer(packageID: fixture.package.id, originLocationID: buffer.id,
                                                                      destinationLocationID: archive.id)
            let archived = try await exec(try await operation(.longTermArchiveTransfer, at: archive, .longTermArchiveTransfer(transfer.id)))
            #expect(archived.status == 0, "\(archived.stderr)")
        }
        let files = try await db.connection.query("SELECT id, relative_path, size_bytes, checksum FROM raw_data_file ORDER BY id")
        for row in files {
            let (id, path, size, checksum): (Int64, String, Int64, String) = (try row["id"], try row["relative_path"], try row["size_bytes"], try row["checksum"])
            let source = fixture.sourceRoot.appendingPathComponent(path).path
            for (archive, store) in [(disk, diskStore as any ObjectStore), (s3, s3Store)] {
                try store.upload(file: source, to: "files/\(path)", sha256: checksum, shouldStop: { false })
                _ = try await db.insertPhysicalCopy(of: .rawDataFile(id), at: archive.id, relativePath: "files/\(path)", sizeBytes: size,
                                                    checksum: checksum, verified: true)
            }
        }
    }

    func operation(_ type: OperationType, at location: DataLocation, _ target: OperationTarget) async throws -> OperationRecord {
        try #require(try await db.createOperation(type, queue: "test_\(type.rawValue.lowercased())", locationID: location.id, target: target))
    }

    /// Runs one operation by hand; returns the runner's exit status and the operation afterwards.
    @discardableResult
    func exec(_ operation: OperationRecord) async throws -> (status: Int32, stderr: String, after: OperationRecord) {
        let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(operation.id)], environment: environment)
        return (result.status, result.stderr, try #require(try await db.operation(id: operation.id)))
    }

    /// A fixity pass or audit of `location` through the runner; returns its run record.
    func integrityRun(_ type: OperationType, at location: DataLocation) async throws -> IntegrityRun {
        let ran = try await exec(try await operation(type, at: location, .none))
        #expect(ran.status == 0 && ran.after.state == .succeeded, "\(ran.stderr)")
        let runs = try await db.integrityRuns(locationID: location.id, kind: type == .fixityCheck ? .fixity : .audit, limit: 1)
        return try #require(runs.first)
    }

    /// One cycle of the integrity manager, as the daemon runs it; returns the repairs it created.
    func repairsScheduled() async throws -> [OperationRecord] {
        var settings = ManagerSettings()
        settings.fixityIntervalSeconds = 1e9
        _ = try await IntegrityManager(settings: settings).cycle(db, logger: Logger(label: "test"))
        return try await db.operations(states: [.pending], queue: nil, type: .archiveRepair, limit: 100)
    }

    var packageCopyAtDisk: PhysicalCopy {
        get async throws { try #require(try await db.liveCopy(of: .rawDataPackage(fixture.package.id), at: disk.id)) }
    }

    var packageCopyAtS3: PhysicalCopy {
        get async throws { try #require(try await db.liveCopy(of: .rawDataPackage(fixture.package.id), at: s3.id)) }
    }

    /// Files under the disk archive's quarantine directory.
    func quarantinedFiles() -> [String] {
        let root = diskRoot.appendingPathComponent(".ccat-quarantine").path
        return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }
}
