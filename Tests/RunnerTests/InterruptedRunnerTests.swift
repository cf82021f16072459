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
