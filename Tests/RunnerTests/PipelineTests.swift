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
