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
        let bucket = "ccat-lta-\(UUID().uuidString.lowercased().prefix(13))"
        var archive = "storage: {disk: {root: \"{work}/cologne/lta\"}}"
        if kind == .s3 {
            let endpoint = try TestEnvironment.requireS3Endpoint()
            archive = "storage: {s3: {endpoint: \"\(endpoint)\", bucket: \(bucket), region: us-east-1, prefix: ccat, credentials: \"env:CCAT_TEST_LTA\"}}"
            let keys = TestEnvironment.s3Keys()
            try S3Store(name: "lta", endpointURL: endpoint, bucket: bucket, region: "us-east-1", prefix: "", pathStyle: true,
                        credentials: S3Credentials(accessKeyID: keys.accessKeyID, secretAccessKey: keys.secretAccessKey)).createBucket()
        }
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

    var environment: [String: String] {
        let keys = TestEnvironment.s3Keys()
        return fixture.environment.merging(["CCAT_TEST_LTA_ACCESS_KEY_ID": keys.accessKeyID,
                                            "CCAT_TEST_LTA_SECRET_ACCESS_KEY": keys.secretAccessKey]) { $1 }
    }

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

@Suite("ccat-runner: the pipeline from buffer to archive, staging and deletion", .serialized)
struct PipelineTests {
    static var kinds: [ArchiveKind] { TestEnvironment.runS3Tests ? [.disk, .s3] : [.disk] }

    @Test(arguments: kinds)
    func everyOperationRoundTrips(_ kind: ArchiveKind) async throws {
        try await Pipeline.with(kind) { pipeline in
            let db = pipeline.db
            let (bundle, transfer) = try await pipeline.packageBundleAndSend()
            #expect(bundle.status == .completed)
            #expect(bundle.checksum == String(try runProcess("/usr/bin/sha256sum", ["-b", pipeline.path("buffer/bundles/bundle-0001.tar")]).stdout.prefix(64)))
            let listing = try runProcess("/usr/bin/tar", ["-tf", pipeline.path("buffer/bundles/bundle-0001.tar")])
            #expect(listing.stdout == pipeline.fixture.package.relativePath + "\n")

            let telescopeBuffer = try await pipeline.location("ccat", "buffer")
            let cologneBuffer = try await pipeline.location("cologne", "buffer")
            let sent = try await pipeline.exec(try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id)))
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(try await db.dataTransfer(id: transfer.id)?.status == .completed)
            #expect(try await db.dataTransfer(id: transfer.id)?.bytesTransferred == bundle.sizeBytes)
            #expect(try await db.liveCopy(of: .dataTransferPackage(bundle.id), at: cologneBuffer.id)?.verifiedAt != nil)
            #expect(FileManager.default.contentsEqual(atPath: pipeline.path("buffer/bundles/bundle-0001.tar"),
                                                      andPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar")))
            // The transfer's log is linked to it.
            let logs = try await db.connection.query("SELECT count(*) AS n FROM data_transfer_log WHERE data_transfer_id = \(transfer.id)")
            #expect(try logs.first?["n"] as Int? == 1)

            let unpacked = try await pipeline.exec(try await pipeline.operation(.dataTransferUnpacking, at: cologneBuffer, .dataTransfer(transfer.id)))
            #expect(unpacked.status == 0, "\(unpacked.stderr)")
            #expect(try await db.dataTransfer(id: transfer.id)?.unpackStatus == .completed)
            let package = try #require(try await db.rawDataPackage(id: pipeline.fixture.package.id))
            #expect(try FileChecksum.sha256(of: pipeline.path("cologne/buffer/\(package.relativePath)")).sha256 == package.checksum)
            #expect(try await db.liveCopy(of: .rawDataPackage(package.id), at: cologneBuffer.id)?.verifiedAt != nil)

            // Deleting the telescope's buffer copy before anything is archived is refused.
            let early = try #require(try await db.liveCopy(of: .rawDataPackage(package.id), at: telescopeBuffer.id))
            let refused = try await pipeline.exec(try await pipeline.operation(.deletion, at: telescopeBuffer, .physicalCopy(early.id)))
            #expect(refused.status == 1)
            #expect(refused.after.errorClass == "deletion_refused")
            #expect(refused.after.lastError?.contains("0 of 1 archive sites") == true)
            #expect(FileManager.default.fileExists(atPath: pipeline.fixture.archivePath))
            #expect(try await db.physicalCopy(id: early.id)?.status == .present)
            try await db.connection.execute("UPDATE operation SET state = 'cancelled' WHERE id = \(refused.after.id)")

            let lta = try await pipeline.location("cologne", "lta")
            let archiveTransfer = try await db.createLongTermArchiveTransfer(packageID: package.id, originLocationID: cologneBuffer.id,
                                                                             destinationLocationID: lta.id)
            let archived = try await pipeline.exec(try await pipeline.operation(.longTermArchiveTransfer, at: cologneBuffer, .longTermArchiveTransfer(archiveTransfer.id)))
            #expect(archived.status == 0, "\(archived.stderr)")
            #expect(try await db.longTermArchiveTransfer(id: archiveTransfer.id)?.status == .completed)
            let archiveCopy = try #require(try await db.liveCopy(of: .rawDataPackage(package.id), at: lta.id))
            #expect(archiveCopy.checksum == package.checksum && archiveCopy.verifiedAt != nil)
            if kind == .s3 {
                // aws-cli reads the archived package, byte for byte.
                let fetched = pipeline.path("aws-fetched.tar")
                try awsCopy(from: "s3://\(pipeline.bucket)/ccat/\(package.relativePath)", to: fetched)
                #expect(try FileChecksum.sha256(of: fetched).sha256 == package.checksum)
            } else {
                #expect(try FileChecksum.sha256(of: pipeline.path("cologne/lta/\(package.relativePath)")).sha256 == package.checksum)
            }

            // Staging for a scientist: the files, byte for byte, registered as copies of the job.
            let processing = try await pipeline.location("cologne", "ramses_processing")
            let job = try await db.createStagingJob(requestID: nil, destinationLocationID: processing.id, originLocationID: nil,
                                                    targetDirectory: "alice/request-1", packageIDs: [package.id])
            // The staging manager schedules it, ahead of background work.
            #expect(try await StagingManager(settings: ManagerSettings()).cycle(db, logger: Logger(label: "test")) == 1)
            let stagingOperation = try #require(try await db.connection.query("""
                SELECT id FROM operation WHERE staging_job_id = \(job.id) AND operation_type = 'STAGING' AND state = 'pending' AND priority > 0
                """).first.map { try $0["id"] as Int64 })
            #expect(try await StagingManager(settings: ManagerSettings()).cycle(db, logger: Logger(label: "test")) == 0)
            let staged = try await pipeline.exec(try #require(try await db.operation(id: stagingOperation)))
            #expect(staged.status == 0, "\(staged.stderr)")
            #expect(try await db.stagingJob(id: job.id)?.status == .completed)
            for file in pipeline.fixture.files {
                #expect(FileManager.default.contentsEqual(atPath: pipeline.path("cologne/processing/alice/request-1/\(file.path)"),
                                                          andPath: pipeline.fixture.sourceRoot.appendingPathComponent(file.path).path), "\(file.path)")
            }
            let stagedCopies = try await db.connection.query("SELECT count(*) AS n FROM physical_copy WHERE staging_job_id = \(job.id) AND verified_at IS NOT NULL")
            #expect(try stagedCopies.first?["n"] as Int? == pipeline.fixture.files.count)
            #expect(!FileManager.default.fileExists(atPath: pipeline.path("cologne/processing/alice/request-1/.ccat-staging")))

            // The topology asks for two archive sites: one is not enough, whatever exists.
            try await db.setRequiredArchiveSites(2)
            let tooFew = try await pipeline.exec(try await pipeline.operation(.deletion, at: telescopeBuffer, .physicalCopy(early.id)))
            #expect(tooFew.after.errorClass == "deletion_refused" && tooFew.after.lastError?.contains("1 of 2 archive sites") == true,
                    "\(tooFew.after.lastError ?? "")")
            try await db.connection.execute("UPDATE operation SET state = 'cancelled' WHERE id = \(tooFew.after.id)")
            try await db.setRequiredArchiveSites(nil)

            // Now archived at every archive site: the telescope's buffer copy may go.
            let deleted = try await pipeline.exec(try await pipeline.operation(.deletion, at: telescopeBuffer, .physicalCopy(early.id)))
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(!FileManager.default.fileExists(atPath: pipeline.fixture.archivePath))
            let gone = try #require(try await db.physicalCopy(id: early.id))
            #expect(gone.status == .deleted && gone.deletedAt != nil)
            // The audit trail keeps every copy that existed: buffer (deleted), Cologne buffer, archive.
            #expect(try await db.physicalCopies(of: .rawDataPackage(package.id)).count == 3)
            // The archive's own copy is never deleted by the pipeline.
            let keep = try await pipeline.exec(try await pipeline.operation(.deletion, at: lta, .physicalCopy(archiveCopy.id)))
            #expect(keep.after.errorClass == "deletion_refused")
            #expect(try await db.physicalCopy(id: archiveCopy.id)?.status == .present)

            // Monitoring of a disk buffer and of the archive.
            for location in [cologneBuffer, lta] {
                let monitored = try await pipeline.exec(try await pipeline.operation(.monitoring, at: location, .none))
                #expect(monitored.status == 0, "\(monitored.stderr)")
                let status = try #require(try await db.locationStatus(location.id))
                #expect(status.reachable, "\(status.errorMessage ?? "")")
                if location.storageType == .disk { #expect((status.totalBytes ?? 0) > 0 && (status.freeBytes ?? -1) >= 0) }
            }
        }
    }

    /// A destination buffer on another host (here the loopback sshd): rsync over ssh, verified
    /// there with sha256sum; a second run finds it there; an unreachable host is a transport error.
    @Test(.enabled(if: TestEnvironment.runSSHTests))
    func rsyncOverSSHReachesADestinationOnAnotherHost() async throws {
        let ssh = ["CCAT_SSH_CONFIG": try TestEnvironment.requireSSHConfig()]
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (transfer, telescopeBuffer, cologneBuffer, log) = try await pipeline.sendToRemoteHost(by: .rsync, environment: ssh)
            #expect(log.contains("on ccat-test-remote by RSYNC") && log.contains("verified on ccat-test-remote"), "\(log)")

            // Sent again (say, after a crash before the result was recorded): found there, not copied.
            try await db.connection.execute("UPDATE data_transfer SET status = 'PENDING' WHERE id = \(transfer.id)")
            let again = try await pipeline.exec(try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id)), environment: ssh)
            #expect(again.status == 0, "\(again.stderr)")
            let againLog = try String(contentsOfFile: try #require(again.after.logPath), encoding: .utf8)
            #expect(againLog.contains("ccat-test-remote already holds the verified bundle"), "\(againLog)")

            // COPY cannot reach another host: refused with what to change, nothing written locally.
            try FileManager.default.removeItem(atPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar"))
            try await db.connection.execute("UPDATE data_transfer SET status = 'PENDING', method = 'COPY' WHERE id = \(transfer.id)")
            let failing = try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id))
            let copied = try await pipeline.exec(failing, environment: ssh)
            #expect(copied.status == 1)
            #expect(copied.after.lastError?.contains("is on ccat-test-remote, which COPY cannot reach") == true, "\(copied.after.lastError ?? "")")
            #expect(!FileManager.default.fileExists(atPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar")))
            try await db.connection.execute("UPDATE data_transfer SET method = 'RSYNC' WHERE id = \(transfer.id)")

            // A host ssh cannot reach: a transport error that names it, and the operation retries.
            try await db.setSSHHost(locationID: cologneBuffer.id, "ccat-no-such-host.invalid")
            try await db.connection.execute("UPDATE data_transfer SET status = 'PENDING' WHERE id = \(transfer.id)")
            let unreachable = try await pipeline.exec(failing, environment: ssh)
            #expect(unreachable.status == 1)
            #expect(unreachable.after.lastError?.contains("ssh to ccat-no-such-host.invalid failed") == true, "\(unreachable.after.lastError ?? "")")
        }
    }

    /// bbcp is not packaged for Debian, so this runs where `CCAT_TEST_BBCP` names a bbcp binary
    /// (used on both ends), not in CI; its command line is checked by ExternalCopyArgumentTests.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CCAT_TEST_BBCP"] != nil, "set CCAT_TEST_BBCP to a bbcp binary"))
    func bbcpOverSSHReachesADestinationOnAnotherHost() async throws {
        let bbcp = try #require(ProcessInfo.processInfo.environment["CCAT_TEST_BBCP"])
        let directory = (bbcp as NSString).deletingLastPathComponent
        let environment = ["CCAT_SSH_CONFIG": try TestEnvironment.requireSSHConfig(), "CCAT_REMOTE_BBCP": bbcp,
                           "PATH": directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (transfer, telescopeBuffer, cologneBuffer, log) = try await pipeline.sendToRemoteHost(by: .bbcp, environment: environment)
            #expect(log.contains("on ccat-test-remote by BBCP") && log.contains("-z -T ssh -x -a") && log.contains("verified on ccat-test-remote"), "\(log)")

            // Between two paths mounted on the transfer node: plain bbcp, verified as well.
            try await db.setSSHHost(locationID: cologneBuffer.id, nil)
            try FileManager.default.removeItem(atPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar"))
            try await db.connection.execute("UPDATE data_transfer SET status = 'PENDING' WHERE id = \(transfer.id)")
            let local = try await pipeline.exec(try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id)), environment: environment)
            #expect(local.status == 0, "\(local.stderr)")
            #expect(FileManager.default.contentsEqual(atPath: pipeline.path("buffer/bundles/bundle-0001.tar"),
                                                      andPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar")))
        }
    }

    @Test func flippedByteIsCaughtAtTransferUnpackAndStagingAndNothingIsVerified() async throws {
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (bundle, transfer) = try await pipeline.packageBundleAndSend()
            let telescopeBuffer = try await pipeline.location("ccat", "buffer")
            let cologneBuffer = try await pipeline.location("cologne", "buffer")
            let origin = pipeline.path("buffer/bundles/bundle-0001.tar")
            let arrived = pipeline.path("cologne/buffer/bundles/bundle-0001.tar")

            // Transfer: the origin bundle is damaged after it was built.
            try flipByte(origin, at: 1_000)
            let transferOperation = try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id))
            let sent = try await pipeline.exec(transferOperation)
            #expect(sent.status == 1)
            #expect(sent.after.errorClass == "checksum_mismatch")
            #expect(try await db.dataTransfer(id: transfer.id)?.status == .failed)
            #expect(!FileManager.default.fileExists(atPath: arrived))
            #expect(try await db.liveCopy(of: .dataTransferPackage(bundle.id), at: cologneBuffer.id) == nil)
            try flipByte(origin, at: 1_000)  // repaired
            #expect(try await pipeline.exec(transferOperation).status == 0)

            // Unpacking: the arrived bundle is damaged inside a member's data. It is removed and its
            // transfer goes back to PENDING; the transfer manager sends it again, the unpack
            // manager unpacks the new copy, and the package ends verified.
            try flipByte(arrived, at: 3_000)
            let unpack = try await pipeline.exec(try await pipeline.operation(.dataTransferUnpacking, at: cologneBuffer, .dataTransfer(transfer.id)))
            #expect(unpack.status == 1)
            #expect(unpack.after.state == .cancelled && unpack.after.errorClass == "bundle_damaged")
            #expect(unpack.after.lastError?.contains("arrived damaged") == true)
            let sentBack = try #require(try await db.dataTransfer(id: transfer.id))
            #expect(sentBack.status == .pending && sentBack.unpackStatus == .pending && sentBack.attempts == 2)
            #expect(sentBack.errorMessage?.contains("SHA-256") == true)
            #expect(!FileManager.default.fileExists(atPath: arrived))
            #expect(try await db.liveCopy(of: .dataTransferPackage(bundle.id), at: cologneBuffer.id) == nil)
            #expect(try await db.liveCopy(of: .rawDataPackage(pipeline.fixture.package.id), at: cologneBuffer.id) == nil)
            #expect(!FileManager.default.fileExists(atPath: pipeline.path("cologne/buffer/\(pipeline.fixture.package.relativePath)")))

            let logger = Logger(label: "test")
            #expect(try await TransferManager(settings: ManagerSettings()).cycle(db, logger: logger) == 1)
            let resend = try #require(try await db.connection.query("""
                SELECT id FROM operation WHERE data_transfer_id = \(transfer.id) AND operation_type = 'DATA_TRANSFER' AND state = 'pending'
                """).first.map { try $0["id"] as Int64 })
            #expect(try await pipeline.exec(try #require(try await db.operation(id: resend))).status == 0)
            #expect(try await UnpackManager(settings: ManagerSettings()).cycle(db, logger: logger) == 1)
            let unpackAgain = try #require(try await db.connection.query("""
                SELECT id FROM operation WHERE data_transfer_id = \(transfer.id) AND operation_type = 'DATA_TRANSFER_UNPACKING' AND state = 'pending'
                """).first.map { try $0["id"] as Int64 })
            let unpacked = try await pipeline.exec(try #require(try await db.operation(id: unpackAgain)))
            #expect(unpacked.status == 0, "\(unpacked.stderr)")
            #expect(try await db.dataTransfer(id: transfer.id)?.unpackStatus == .completed)
            let repaired = try #require(try await db.rawDataPackage(id: pipeline.fixture.package.id))
            #expect(try FileChecksum.sha256(of: pipeline.path("cologne/buffer/\(repaired.relativePath)")).sha256 == repaired.checksum)
            // The audit trail keeps the damaged arrival as a deleted copy next to the good one.
            #expect(try await db.physicalCopies(of: .dataTransferPackage(bundle.id)).filter { $0.dataLocationID == cologneBuffer.id }
                .map(\.status) == [.deleted, .present])

            // Staging: the archived package is damaged in the archive.
            let package = try #require(try await db.rawDataPackage(id: pipeline.fixture.package.id))
            let lta = try await pipeline.location("cologne", "lta")
            let archiveTransfer = try await db.createLongTermArchiveTransfer(packageID: package.id, originLocationID: telescopeBuffer.id,
                                                                             destinationLocationID: lta.id)
            #expect(try await pipeline.exec(try await pipeline.operation(.longTermArchiveTransfer, at: telescopeBuffer, .longTermArchiveTransfer(archiveTransfer.id))).status == 0)
            try flipByte(pipeline.path("cologne/lta/\(package.relativePath)"), at: 2_000)
            let processing = try await pipeline.location("cologne", "ramses_processing")
            let job = try await db.createStagingJob(requestID: nil, destinationLocationID: processing.id, originLocationID: nil,
                                                    targetDirectory: "bob/r1", packageIDs: [package.id])
            let staged = try await pipeline.exec(try await pipeline.operation(.staging, at: processing, .stagingJob(job.id)))
            #expect(staged.status == 1)
            #expect(staged.after.errorClass == "checksum_mismatch")
            #expect(try await db.stagingJob(id: job.id)?.status == .failed)
            let stagedCopies = try await db.connection.query("SELECT count(*) AS n FROM physical_copy WHERE staging_job_id = \(job.id)")
            #expect(try stagedCopies.first?["n"] as Int? == 0)
            let leftovers = FileManager.default.enumerator(atPath: pipeline.path("cologne/processing"))?.allObjects as? [String] ?? []
            #expect(leftovers.filter { $0.hasSuffix(".tar") || $0.hasSuffix(".ccat-partial") }.isEmpty, "\(leftovers)")
        }
    }

    @Test func tapeAndMissingToolsAreClearErrors() async throws {
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (_, transfer) = try await pipeline.packageBundleAndSend()
            try await db.connection.execute("UPDATE data_transfer SET method = 'BBCP' WHERE id = \(transfer.id)")
            let telescopeBuffer = try await pipeline.location("ccat", "buffer")
            let transferOperation = try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id))
            let result = try await pipeline.exec(transferOperation)
            if TestEnvironment.tool("bbcp") == nil {
                #expect(result.status == 1)
                #expect(result.after.errorClass == "unsupported")
                #expect(result.after.lastError?.contains("bbcp is not installed") == true)
            }
            // rsync makes the same verified copy (.ci/run installs it; only outside CI may it be missing).
            #expect(TestEnvironment.tool("rsync") != nil || !TestEnvironment.isCI, "rsync is not installed")
            if TestEnvironment.tool("rsync") != nil {
                try await db.connection.execute("UPDATE data_transfer SET method = 'RSYNC', status = 'PENDING' WHERE id = \(transfer.id)")
                // The failed attempt put the operation back to pending; the same operation runs again.
                try await db.connection.execute("UPDATE operation SET next_attempt_at = now() WHERE id = \(transferOperation.id)")
                let again = try await pipeline.exec(transferOperation)
                #expect(again.status == 0, "\(again.stderr)")
                #expect(FileManager.default.contentsEqual(atPath: pipeline.path("buffer/bundles/bundle-0001.tar"),
                                                          andPath: pipeline.path("cologne/buffer/bundles/bundle-0001.tar")))
            }
            // A tape location: monitoring it says plainly that tape is not supported.
            let cologne = try #require(try await db.site(shortName: "cologne"))
            let tape = try await db.insertLocation(siteID: cologne.id, name: "tape_vault", type: .longTermArchive,
                                                   storage: .tape(library: "vault1", pool: nil))
            let monitored = try await pipeline.exec(try await pipeline.operation(.monitoring, at: tape, .none))
            #expect(monitored.status == 1)
            #expect(monitored.after.errorClass == "unsupported")
            #expect(monitored.after.lastError?.contains("tape_vault") == true)
            #expect(monitored.after.lastError?.contains("not supported by this version") == true)
        }
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

@Suite("ccat-runner killed midway: transfer, multipart upload, unpacking")
struct KilledRunnerTests {
    @Test func rerunAfterSIGKILLCompletesWithoutLeftovers() async throws {
        let kind: ArchiveKind = TestEnvironment.runS3Tests ? .s3 : .disk
        // Large enough that each step lasts long enough to be caught midway on a loaded CI machine.
        try await Pipeline.with(kind, fileSize: 100_000_000) { pipeline in
            let db = pipeline.db
            let (bundle, transfer) = try await pipeline.packageBundleAndSend()
            let telescopeBuffer = try await pipeline.location("ccat", "buffer")
            let cologneBuffer = try await pipeline.location("cologne", "buffer")

            let send = try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id))
            try await pipeline.killMidway(send, what: "transfer") { !pipeline.partials(under: "cologne/buffer").isEmpty }
            let sent = try await pipeline.exec(send)
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(try FileChecksum.sha256(of: pipeline.path("cologne/buffer/\(bundle.relativePath)")).sha256 == bundle.checksum)
            #expect(pipeline.partials(under: "cologne/buffer").isEmpty)

            let unpack = try await pipeline.operation(.dataTransferUnpacking, at: cologneBuffer, .dataTransfer(transfer.id))
            try await pipeline.killMidway(unpack, what: "unpacking") { !pipeline.partials(under: "cologne/buffer/raw").isEmpty }
            let unpacked = try await pipeline.exec(unpack)
            #expect(unpacked.status == 0, "\(unpacked.stderr)")
            let package = try #require(try await db.rawDataPackage(id: pipeline.fixture.package.id))
            #expect(try FileChecksum.sha256(of: pipeline.path("cologne/buffer/\(package.relativePath)")).sha256 == package.checksum)
            #expect(pipeline.partials(under: "cologne/buffer").isEmpty)
            #expect(try await db.dataTransfer(id: transfer.id)?.unpackStatus == .completed)

            let lta = try await pipeline.location("cologne", "lta")
            let archiveTransfer = try await db.createLongTermArchiveTransfer(packageID: package.id, originLocationID: cologneBuffer.id,
                                                                             destinationLocationID: lta.id)
            let archive = try await pipeline.operation(.longTermArchiveTransfer, at: cologneBuffer, .longTermArchiveTransfer(archiveTransfer.id))
            let keys = TestEnvironment.s3Keys()
            let s3 = kind == .s3 ? S3Store(name: "lta", endpointURL: try TestEnvironment.requireS3Endpoint(), bucket: pipeline.bucket, region: "us-east-1",
                                           prefix: "ccat", pathStyle: true,
                                           credentials: S3Credentials(accessKeyID: keys.accessKeyID, secretAccessKey: keys.secretAccessKey)) : nil
            try await pipeline.killMidway(archive, what: kind == .s3 ? "multipart upload" : "archive copy") {
                if let s3 { return try !s3.incompleteUploads(of: package.relativePath).isEmpty }
                return !pipeline.partials(under: "cologne/lta").isEmpty
            }
            let archived = try await pipeline.exec(archive, extra: ["--s3-part-size-mib", "5"])
            #expect(archived.status == 0, "\(archived.stderr)")
            if let s3 {
                #expect(try s3.incompleteUploads(of: package.relativePath).isEmpty)
                #expect(try s3.holds(package.relativePath, size: package.sizeBytes ?? -1, sha256: package.checksum ?? ""))
                let fetched = pipeline.path("fetched.tar")
                try awsCopy(from: "s3://\(pipeline.bucket)/ccat/\(package.relativePath)", to: fetched)
                #expect(try FileChecksum.sha256(of: fetched).sha256 == package.checksum)
            } else {
                #expect(try FileChecksum.sha256(of: pipeline.path("cologne/lta/\(package.relativePath)")).sha256 == package.checksum)
                #expect(pipeline.partials(under: "cologne/lta").isEmpty)
            }
            #expect(try await db.longTermArchiveTransfer(id: archiveTransfer.id)?.status == .completed)
        }
    }
}

/// A stop (scancel's SIGTERM, Slurm's walltime warning) while rsync copies: the runner stops
/// rsync, gives the operation back with rsync's partial data kept, and a rerun completes it.
@Suite("ccat-runner stopped during an rsync copy", .enabled(if: TestEnvironment.tool("rsync") != nil || TestEnvironment.isCI))
struct StoppedRsyncTests {
    @Test func sigtermStopsRsyncAndTheRerunCompletesTheCopy() async throws {
        let rsync = try #require(TestEnvironment.tool("rsync"), "rsync is not installed")
        try await Pipeline.with(.disk, fileSize: 100_000_000) { pipeline in
            let db = pipeline.db
            let (bundle, transfer) = try await pipeline.packageBundleAndSend()
            try await db.connection.execute("UPDATE data_transfer SET method = 'RSYNC' WHERE id = \(transfer.id)")
            // The real rsync, held to 20 MB/s so that the 100 MB copy lasts seconds, not a blink.
            let shim = pipeline.path("shim")
            try FileManager.default.createDirectory(atPath: shim, withIntermediateDirectories: true)
            try "#!/bin/sh\nexec \(rsync) --bwlimit=20000 \"$@\"\n".write(toFile: shim + "/rsync", atomically: true, encoding: .utf8)
            chmod(shim + "/rsync", 0o755)
            let path = shim + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            let target = pipeline.path("cologne/buffer/\(bundle.relativePath)")
            let directory = (target as NSString).deletingLastPathComponent

            let telescopeBuffer = try await pipeline.location("ccat", "buffer")
            let send = try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id))
            let runner = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                ["exec", "--operation", String(send.id)],
                                                environment: ProcessInfo.processInfo.environment.merging(pipeline.environment) { $1 }
                                                    .merging(["PATH": path]) { $1 })
            // rsync writes into a temporary file next to the target while it copies.
            let copying: @Sendable () -> Bool = {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                return names.contains { $0.hasPrefix(".bundle-0001.tar.") }
            }
            let caught = try await runner.kill(within: .seconds(90), signal: SIGTERM, when: copying)
            #expect(caught, "rsync never started copying, or finished first")
            let status = try await offPool { try runner.wait() }
            #expect(status == 0, "the runner's exit status after a stop")

            // rsync stopped: no rsync left, nothing under the final name, its partial data kept.
            let left = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int32($0) != nil }.filter { pid in
                let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return command.contains("rsync") && command.contains(target)
            }
            #expect(left.isEmpty, "rsync processes left running: \(left)")
            #expect(!FileManager.default.fileExists(atPath: target), "the copy ran to its end after the stop")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/.ccat-rsync-partial/bundle-0001.tar"))
            let after = try #require(try await db.operation(id: send.id))
            #expect(after.state == .pending && after.attempts == 0, "\(after.state) after \(after.attempts) attempts")
            let log = try String(contentsOfFile: try #require(after.logPath), encoding: .utf8)
            #expect(log.contains("received SIGTERM: sending SIGTERM to rsync") && log.contains("abandoned: received SIGTERM"), "\(log)")

            let resent = try await pipeline.exec(send)
            #expect(resent.status == 0, "\(resent.stderr)")
            #expect(try FileChecksum.sha256(of: target).sha256 == bundle.checksum)
            #expect(try await db.dataTransfer(id: transfer.id)?.status == .completed)
        }
    }
}

/// `aws s3 cp` against the S3 test server.
func awsCopy(from source: String, to destination: String) throws {
    let aws = try TestEnvironment.awsCLI()
    let result = try runProcess(aws.path, ["--endpoint-url", try TestEnvironment.requireS3Endpoint(), "s3", "cp", source, destination],
                                environment: aws.environment)
    #expect(result.status == 0, "\(result.stderr)")
}

extension ChildProcess {
    /// Sends `signal` (SIGKILL unless told) as soon as `condition` holds and says whether it did;
    /// false when the process ended, or `within` passed, first. The watch runs on a thread of its
    /// own, polling every millisecond: a step may last well under a second, and the cooperative
    /// pool may be too busy with other tests' blocking calls to wake a polling task in time.
    func kill(within limit: Duration, signal: Int32 = SIGKILL, when condition: @escaping @Sendable () throws -> Bool) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let deadline = ContinuousClock.now + limit
                do {
                    while self.isRunning, ContinuousClock.now < deadline {
                        if try condition() {
                            self.signal(signal)
                            continuation.resume(returning: true)
                            return
                        }
                        usleep(1000)
                    }
                    continuation.resume(returning: false)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

extension OpsDB {
    /// What the tracker does for a killed runner: puts its operations back once their leases ran
    /// out. The lease's end is the server's clock at the runner's last renewal, so this asks again
    /// until something is released or `within` passed; returns how many were released.
    func releaseOnceLeasesExpire() async throws -> Int {
        var released = 0
        _ = try await eventually(within: .seconds(60), every: .milliseconds(250)) {
            released = try await releaseExpiredHandRuns(policy: RetryPolicy(baseDelaySeconds: 0))
            return released > 0
        }
        return released
    }
}
