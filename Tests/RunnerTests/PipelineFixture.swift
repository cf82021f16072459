import Archiving
import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Processes
import Scheduling
import Storage
import Testing
import TestSupport

/// Where Cologne keeps its long-term archive in a test.
enum ArchiveKind: String, CustomTestStringConvertible, Sendable {
    case disk, s3
    var testDescription: String { rawValue }
}

/// The pipeline after packaging: the telescope's buffer, and Cologne with a buffer, a long-term
/// archive (disk or S3) and a PROCESSING location. Every step runs through `ccat-runner exec`.
struct Pipeline {
    let fixture: PackagingFixture
    let kind: ArchiveKind
    let bucket: String
    var db: OpsDB { fixture.db }
    var work: URL { fixture.work }

    static func with(_ kind: ArchiveKind, fileSize: Int = 100_000, _ body: (Pipeline) async throws -> Void) async throws {
        var bucket = ""
        var archive = "storage: {disk: {root: \"{work}/cologne/lta\"}}"
        if kind == .s3 { (bucket, archive) = try TestArchiveBucket.create("ccat-lta") }
        let cologne = """
              - short_name: cologne
                name: University of Cologne
                locations:
                  - name: buffer
                    type: BUFFER
                    storage: {disk: {root: "{work}/cologne/buffer"}}
                  - name: lta
                    type: LONG_TERM_ARCHIVE
                    \(archive)
                  - name: ramses_processing
                    type: PROCESSING
                    storage: {disk: {root: "{work}/cologne/processing"}}
            """
        try await PackagingFixture.with(fileSize: fileSize, moreSites: cologne) { fixture in
            for directory in ["cologne/buffer", "cologne/lta", "cologne/processing"] {
                try FileManager.default.createDirectory(at: fixture.work.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
            try await body(Pipeline(fixture: fixture, kind: kind, bucket: bucket))
        }
    }

    var environment: [String: String] { TestArchiveBucket.environment(fixture.environment) }

    func location(_ site: String, _ name: String) async throws -> DataLocation {
        try #require(try await db.location(siteShortName: site, name: name))
    }

    func operation(_ type: OperationType, at location: DataLocation, _ target: OperationTarget) async throws -> OperationRecord {
        try #require(try await db.createOperation(type, queue: "test_\(type.rawValue.lowercased())", locationID: location.id, target: target))
    }

    /// Runs one operation by hand; returns the runner's exit status and the operation afterwards.
    @discardableResult
    func exec(_ operation: OperationRecord, extra: [String] = [], environment more: [String: String] = [:]) async throws -> (status: Int32, stderr: String, after: OperationRecord) {
        let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(operation.id)] + extra,
                                       environment: environment.merging(more) { $1 })
        return (result.status, result.stderr, try #require(try await db.operation(id: operation.id)))
    }

    func path(_ relative: String) -> String { work.appendingPathComponent(relative).path }

    /// Packaging, bundling and transfer to Cologne: returns the bundle and the transfer.
    func packageBundleAndSend() async throws -> (bundle: DataTransferPackage, transfer: DataTransfer) {
        let packaged = try await exec(fixture.operation)
        #expect(packaged.status == 0, "\(packaged.stderr)")
        let telescopeBuffer = try await location("ccat", "buffer")
        let bundle = try await db.createDataTransferPackage(name: "bundle-0001", originLocationID: telescopeBuffer.id,
                                                           relativePath: "bundles/bundle-0001.tar", packageIDs: [fixture.package.id])
        let bundled = try await exec(try await operation(.dataTransferPackageCreation, at: telescopeBuffer, .dataTransferPackage(bundle.id)))
        #expect(bundled.status == 0, "\(bundled.stderr)")
        let cologneBuffer = try await location("cologne", "buffer")
        let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: telescopeBuffer.id,
                                                       destinationLocationID: cologneBuffer.id, routeID: nil, method: .copy)
        return (try #require(try await db.dataTransferPackage(id: bundle.id)), transfer)
    }
}

extension Pipeline {
    /// Packages, bundles and sends the bundle by `method` to Cologne's buffer, which is made to
    /// live on the loopback sshd's host; checks it arrived whole, completed and verified. Returns
    /// the transfer, both buffers and the operation's log.
    func sendToRemoteHost(by method: TransferMethod, environment: [String: String])
        async throws -> (transfer: DataTransfer, origin: DataLocation, destination: DataLocation, log: String) {
        let (bundle, transfer) = try await packageBundleAndSend()
        let telescopeBuffer = try await location("ccat", "buffer")
        let cologneBuffer = try await location("cologne", "buffer")
        try await db.setSSHHost(locationID: cologneBuffer.id, "ccat-test-remote")
        try await db.connection.execute("UPDATE data_transfer SET method = \(method) WHERE id = \(transfer.id)")
        let sent = try await exec(try await operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id)), environment: environment)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: path("buffer/bundles/bundle-0001.tar"), andPath: path("cologne/buffer/bundles/bundle-0001.tar")))
        #expect(try await db.dataTransfer(id: transfer.id)?.status == .completed)
        #expect(try await db.liveCopy(of: .dataTransferPackage(bundle.id), at: cologneBuffer.id)?.verifiedAt != nil)
        let log = try String(contentsOfFile: try #require(sent.after.logPath), encoding: .utf8)
        return (transfer, telescopeBuffer, cologneBuffer, log)
    }

    /// Starts `ccat-runner exec` on the operation, SIGKILLs it once `midway` holds, lets its lease
    /// expire and puts the operation back, as the tracker would.
    func killMidway(_ operation: OperationRecord, what: String, midway: @escaping @Sendable () throws -> Bool) async throws {
        let process = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                             ["exec", "--operation", String(operation.id), "--lease-seconds", "2", "--heartbeat-seconds", "1",
                                              "--s3-part-size-mib", "5", "--s3-parallel-parts", "2"],
                                             environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        let caught = try await process.kill(within: .seconds(90), when: midway)
        #expect(caught, "\(what): the runner finished (or never started) before it could be killed midway")
        process.signal(SIGKILL)
        try process.wait()
        let released = try await db.releaseOnceLeasesExpire()
        #expect(released == 1, "\(what)")
    }

    func partials(under relative: String) -> [String] {
        (FileManager.default.enumerator(atPath: path(relative))?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".ccat-partial") }
    }
}

/// A fresh bucket on the S3 test server for a long-term archive of a test topology, whose keys the
/// runner reads from `CCAT_TEST_LTA_*`.
enum TestArchiveBucket {
    /// The bucket's name and the `storage:` line of a location on it (prefix `ccat`).
    static func create(_ namePrefix: String) throws -> (bucket: String, storage: String) {
        let endpoint = try TestEnvironment.requireS3Endpoint()
        let bucket = "\(namePrefix)-\(UUID().uuidString.lowercased().prefix(13))"
        try store(bucket, prefix: "").createBucket()
        return (bucket, "storage: {s3: {endpoint: \"\(endpoint)\", bucket: \(bucket), region: us-east-1, prefix: ccat, credentials: \"env:CCAT_TEST_LTA\"}}")
    }

    /// The bucket as the runner sees it.
    static func store(_ bucket: String, prefix: String = "ccat") throws -> S3Store {
        let keys = TestEnvironment.s3Keys()
        return S3Store(name: "lta", endpointURL: try TestEnvironment.requireS3Endpoint(), bucket: bucket, region: "us-east-1", prefix: prefix,
                       pathStyle: true, credentials: S3Credentials(accessKeyID: keys.accessKeyID, secretAccessKey: keys.secretAccessKey))
    }

    /// `base` with the archive's keys for the runner.
    static func environment(_ base: [String: String]) -> [String: String] {
        let keys = TestEnvironment.s3Keys()
        return base.merging(["CCAT_TEST_LTA_ACCESS_KEY_ID": keys.accessKeyID, "CCAT_TEST_LTA_SECRET_ACCESS_KEY": keys.secretAccessKey]) { $1 }
    }
}
