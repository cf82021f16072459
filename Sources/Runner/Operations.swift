import Archiving
import Foundation
import OpsDB
import Scheduling
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The store behind a location: a POSIX tree or an S3 bucket. Tape is refused with a clear error.
func store(for locationID: Int64, _ db: OpsDB, s3: S3Settings) async throws -> (location: DataLocation, store: any ObjectStore) {
    guard let location = try await db.location(id: locationID) else {
        throw InvalidOperation(description: "location \(locationID) does not exist")
    }
    switch try await db.storage(of: location) {
    case .disk(let root):
        return (location, DiskStore(name: location.name, root: root))
    case .s3(let endpoint, let bucket, let region, let prefix, let credentialsSource, let pathStyle):
        let credentials = try S3Credentials.load(source: credentialsSource, location: location.name)
        return (location, S3Store(name: location.name, endpointURL: endpoint, bucket: bucket, region: region, prefix: prefix,
                                  pathStyle: pathStyle, credentials: credentials, settings: s3))
    case .tape(let library, _):
        throw UnsupportedOperation(description: "location '\(location.name)' is on tape (library \(library)); tape is not supported by this version of ccat-runner")
    }
}

/// A POSIX store, for steps that read or write a file tree (packaging, unpacking, staging).
func diskStore(for locationID: Int64, _ db: OpsDB, purpose: String) async throws -> DiskStore {
    guard let location = try await db.location(id: locationID) else {
        throw InvalidOperation(description: "\(purpose) location \(locationID) does not exist")
    }
    switch try await db.storage(of: location) {
    case .disk(let root): return DiskStore(name: location.name, root: root)
    case .s3: throw UnsupportedOperation(description: "\(purpose) location '\(location.name)' is S3; this step needs a POSIX file system")
    case .tape: throw UnsupportedOperation(description: "\(purpose) location '\(location.name)' is tape, which this version does not support")
    }
}

func require<T>(_ value: T?, _ what: @autoclosure () -> String) throws -> T {
    guard let value else { throw InvalidOperation(description: what()) }
    return value
}

func resultJSON(_ fields: [String: any Sendable]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// DATA_TRANSFER_PACKAGE_CREATION: the bundle's raw data package archives, from the buffer, into
/// one transfer archive next to them, each verified against its recorded checksum on the way.
enum DataTransferPackageCreation {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let bundleID = try require(operation.dataTransferPackageID, "operation \(operation.id) names no data transfer package")
        let bundle = try require(try await db.dataTransferPackage(id: bundleID), "data transfer package \(bundleID) does not exist")
        let packages = try await db.rawDataPackages(bundleID: bundleID)
        guard !packages.isEmpty else { throw InvalidOperation(description: "data transfer package \(bundle.name) holds no raw data packages") }
        let buffer = try await diskStore(for: bundle.originLocationID, db, purpose: "buffer")
        var inputs: [ArchiveInput] = []
        var expected: [ArchiveMember] = []
        for package in packages {
            guard package.status == .completed, let checksum = package.checksum, let size = package.sizeBytes else {
                throw InvalidOperation(description: "raw data package \(package.name) is \(package.status.rawValue), not yet archived; it cannot be bundled")
            }
            inputs.append(ArchiveInput(source: try buffer.rooted(package.relativePath), memberPath: package.relativePath, expectedSHA256: checksum))
            expected.append(ArchiveMember(path: package.relativePath, size: size, sha256: checksum))
        }
        let destination = try buffer.rooted(bundle.relativePath)
        context.log.write("bundling \(packages.count) raw data packages into \(destination)")
        let summary: ArchiveSummary
        if (try? destination.status()) != nil, let existing = try? TarArchive.scan(destination, expected: expected) {
            context.log.write("\(destination) already holds the verified bundle (sha256 \(existing.sha256)); not rebuilt")
            summary = existing
        } else {
            try buffer.requireSpace(TarArchive.sizeBound(memberSizes: expected.map(\.size)), for: "bundle \(bundle.name)")
            let stop = context.stop
            let sources = inputs
            summary = try await runBlocking { try TarArchive.create(at: destination, inputs: sources) { _ in try stop.check() } }
            for (member, want) in zip(summary.members, expected) where member.size != want.size {
                throw ArchiveError(kind: .checksumMismatch, path: destination.path, member: member.path,
                                   problem: "\(member.size) bytes, but \(want.size) were recorded")
            }
            context.log.write("wrote \(summary.size) bytes, sha256 \(summary.sha256)")
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: summary.size,
                                    resultJSON: resultJSON(["sha256": summary.sha256, "size": summary.size, "members": summary.members.count]),
                                    logPath: context.log.path),
            record: { db in
                try await db.recordDataTransferPackageArchive(bundleID, sizeBytes: summary.size, checksum: summary.sha256)
                if try await db.liveCopy(of: .dataTransferPackage(bundleID), at: bundle.originLocationID) == nil {
                    _ = try await db.insertPhysicalCopy(of: .dataTransferPackage(bundleID), at: bundle.originLocationID, relativePath: bundle.relativePath,
                                                        sizeBytes: summary.size, checksum: summary.sha256, verified: true)
                }
            })
    }
}

/// The data transfer an operation names, and the bundle it carries.
func transferAndBundle(_ operation: OperationRecord, _ db: OpsDB) async throws -> (DataTransfer, DataTransferPackage) {
    let transferID = try require(operation.dataTransferID, "operation \(operation.id) names no data transfer")
    let transfer = try require(try await db.dataTransfer(id: transferID), "data transfer \(transferID) does not exist")
    let bundle = try require(try await db.dataTransferPackage(id: transfer.dataTransferPackageID),
                             "data transfer package \(transfer.dataTransferPackageID) does not exist")
    return (transfer, bundle)
}

/// DATA_TRANSFER: the bundle from the origin buffer to the destination buffer by the route's
/// method; the copy's size and SHA-256 are verified at the destination before success.
enum DataTransferExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let (transfer, bundle) = try await transferAndBundle(operation, db)
        let transferID = transfer.id
        guard bundle.status == .completed, let checksum = bundle.checksum, let size = bundle.sizeBytes else {
            throw InvalidOperation(description: "data transfer package \(bundle.name) is \(bundle.status.rawValue); it is sent once it has been built")
        }
        let origin = try await diskStore(for: transfer.originLocationID, db, purpose: "origin buffer")
        let destination = try await diskStore(for: transfer.destinationLocationID, db, purpose: "destination buffer")
        let source = try origin.rooted(bundle.relativePath)
        let remoteHost = try await db.sshHost(of: transfer.destinationLocationID)
        if let remoteHost, transfer.method != .rsync, transfer.method != .bbcp {
            throw UnsupportedOperation(description: "\(destination.description) is on \(remoteHost), which \(transfer.method.rawValue) cannot reach; "
                                       + "set the method of the route of transfer \(transferID) to RSYNC or BBCP ('ccat routes add ... --method rsync')")
        }
        context.log.write("transfer \(transferID): \(bundle.name) (\(size) bytes) \(origin.description) -> \(destination.description)"
                          + (remoteHost.map { " on \($0)" } ?? "") + " by \(transfer.method.rawValue)")

        if transfer.method == .rsync || transfer.method == .bbcp {
            // The tools take a path: the bundle must be reachable without a link first (the tool
            // itself opens the path as given).
            close(try source.openForReading().fd)
        }
        if let remoteHost {
            // The destination is on another host: rsync or bbcp over ssh, verified there with sha256sum.
            _ = try destination.path(of: bundle.relativePath)  // the key stays inside the root
            let remote = RemotePath(host: remoteHost, path: destination.root + "/" + bundle.relativePath)
            if try await remote.holds(size: size, sha256: checksum) {
                context.log.write("\(remoteHost) already holds the verified bundle; not sent again")
            } else {
                if transfer.method == .bbcp { try await remote.makeParentDirectory() }
                try await ExternalCopy(method: transfer.method, source: source.path, target: remote.copyTarget, log: context.log, stop: context.stop,
                                       remote: true).run()
                guard try await remote.holds(size: size, sha256: checksum) else {
                    try? await remote.remove()
                    throw StorageError(kind: .checksumMismatch, location: "\(destination.description) on \(remoteHost)", object: bundle.relativePath,
                                       problem: "the copy made by \(transfer.method.rawValue.lowercased()) does not match the recorded size \(size) and SHA-256 \(checksum)")
                }
                context.log.write("verified on \(remoteHost): \(size) bytes, sha256 \(checksum)")
            }
        } else if try destination.holds(bundle.relativePath, size: size, sha256: checksum) {
            context.log.write("the destination already holds the verified bundle; not sent again")
        } else {
            try destination.requireSpace(size, for: "bundle \(bundle.name)")
            let shouldStop = context.shouldStop
            switch transfer.method {
            case .copy:
                _ = try await runBlocking { try destination.upload(file: source, to: bundle.relativePath, sha256: checksum, shouldStop: shouldStop) }
            case .rsync, .bbcp:
                let target = try destination.path(of: bundle.relativePath, creatingParent: true)
                try await ExternalCopy(method: transfer.method, source: source.path, target: target, log: context.log, stop: context.stop).run()
                guard try destination.holds(bundle.relativePath, size: size, sha256: checksum) else {
                    // A damaged copy is not left under the final name.
                    try? destination.delete(bundle.relativePath)
                    throw StorageError(kind: .checksumMismatch, location: destination.description, object: bundle.relativePath,
                                       problem: "the copy made by \(transfer.method.rawValue.lowercased()) does not match the recorded size \(size) and SHA-256 \(checksum)")
                }
            case .s3:
                throw UnsupportedOperation(description: "transfer method S3 needs S3 buffers; buffers are POSIX trees in this version (use COPY, RSYNC or BBCP for route of transfer \(transferID))")
            }
            context.log.write("verified at the destination: \(size) bytes, sha256 \(checksum)")
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: size, resultJSON: resultJSON(["sha256": checksum, "size": size, "method": transfer.method.rawValue]),
                                    logPath: context.log.path),
            record: { db in
                try await db.recordTransferCompleted(transferID, bytes: size)
                if try await db.liveCopy(of: .dataTransferPackage(bundle.id), at: transfer.destinationLocationID) == nil {
                    _ = try await db.insertPhysicalCopy(of: .dataTransferPackage(bundle.id), at: transfer.destinationLocationID,
                                                        relativePath: bundle.relativePath, sizeBytes: size, checksum: checksum, verified: true)
                }
            })
    }
}

/// rsync (resumable: partial data kept in a hidden directory next to the target) or bbcp, run as
/// a child process whose output goes to the operation log; a stop request terminates it.
struct ExternalCopy {
    var method: TransferMethod
    var source: String
    var target: String
    var log: OperationLog
    var stop: StopSignal
    /// The target is `host:path` on another host, reached with ssh and the runner's ssh options.
    var remote = false
    /// After a stop, how long the tool has to end on SIGTERM before SIGKILL (under the local
    /// scheduler's and Slurm's KillWait, so that the runner still records the stop).
    var killAfter: Duration = .seconds(3)

    /// The tool's arguments. Over ssh, rsync gets the remote shell (`-e`) and creates missing
    /// directories; bbcp gets the command that starts bbcp on the target host (`-T`, which bbcp
    /// splits on blanks and in which it replaces %H by the host).
    func arguments(sshOptions: [String] = RemotePath.sshOptions, remoteBBCP: String = RemotePath.remoteBBCP) throws -> [String] {
        if method == .rsync {
            var arguments = ["--partial", "--partial-dir=.ccat-rsync-partial", "--times"]
            if remote { arguments += ["--mkpath", "-e", RemotePath.rsyncShell(sshOptions)] }
            return arguments + ["--", source, target]
        }
        var arguments = ["-f", "-P", "10"]
        if remote {
            let words = ["ssh", "-x", "-a"] + sshOptions + ["%H", remoteBBCP]
            if let spaced = words.first(where: { $0.contains(where: \.isWhitespace) }) {
                throw UnsupportedOperation(description: "bbcp splits its ssh command on blanks, so '\(spaced)' cannot be part of it; use a path without blanks for CCAT_SSH_CONFIG and CCAT_REMOTE_BBCP")
            }
            // -z: the source connects to the target for the data streams, so only the receiving
            // site needs open ports (and the target need not resolve the sending node's name).
            arguments += ["-z", "-T", words.joined(separator: " ")]
        }
        return arguments + [source, target]
    }

    func run() async throws {
        let tool = method == .rsync ? "rsync" : "bbcp"
        guard let executable = findExecutable(tool) else {
            throw UnsupportedOperation(description: "\(tool) is not installed on \(ProcessInfo.processInfo.hostName); install it there or change the route's method")
        }
        // A remote target has no local directory: run next to the source instead.
        let directory = ((remote ? source : target) as NSString).deletingLastPathComponent
        let arguments = try arguments()
        log.write("running \(executable) \(arguments.joined(separator: " "))")
        let logFD = open(log.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard logFD >= 0 else {
            throw StorageError(kind: .io, location: directory, object: log.path, problem: "cannot open the operation log: \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        let process = try ChildProcess.spawn(executable, arguments, directory: directory, stdout: .descriptor(logFD), stderr: .descriptor(logFD))
        // A stop request (SIGTERM, walltime warning) ends the copy: the tool and what it started
        // (rsync's receiver and generator, ssh), which are looked up every second while it runs,
        // so that they are known even if the tool ends first. rsync keeps its partial data for
        // the next attempt.
        var lastLook = ContinuousClock.now - .seconds(1)
        while try process.poll() == nil, stop.stopReason == nil {
            if ContinuousClock.now - lastLook >= .seconds(1) {
                process.noteDescendants()
                lastLook = .now
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if let reason = stop.stopReason {
            log.write("\(reason): sending SIGTERM to \(tool) (pid \(process.pid)) and the \(process.noteDescendants()) processes it started")
            let ended = await process.terminate(grace: killAfter)
            if ended.killed { log.write("\(tool) or what it started still ran \(killAfter) after SIGTERM; sent SIGKILL") }
            if !ended.survivors.isEmpty { log.write("still running after SIGKILL: pids \(ended.survivors.map(String.init).joined(separator: ", "))") }
            throw StopRequested(reason: reason)
        }
        let status = try process.wait()
        try stop.check()
        guard status == 0 else {
            throw StorageError(kind: .transport, location: directory, object: (target as NSString).lastPathComponent,
                               problem: "\(tool) exited with status \(status); see \(log.path)")
        }
    }
}

func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// DATA_TRANSFER_UNPACKING: the arrived bundle is extracted into the destination buffer and every
/// raw data package archive is verified against its recorded checksum; each becomes a verified
/// copy at the buffer.
/// The bundle at the destination is not the one that was sent: it goes back to its transfer.
struct BundleDamaged: Error, CustomStringConvertible {
    var transferID: Int64
    var path: String
    var expected: String
    var actual: String
    var detail: String?

    var description: String {
        "bundle \(path) arrived damaged: SHA-256 \(actual), but \(expected) was sent\(detail.map { " (\($0))" } ?? ""); it is removed and transferred again"
    }
}

enum DataTransferUnpacking {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let (transfer, bundle) = try await transferAndBundle(operation, db)
        let transferID = transfer.id
        guard transfer.status == .completed else {
            throw InvalidOperation(description: "data transfer \(transferID) is \(transfer.status.rawValue); a bundle is unpacked after it arrived")
        }
        let packages = try await db.rawDataPackages(bundleID: bundle.id)
        let expected = try packages.map { package in
            guard let checksum = package.checksum, let size = package.sizeBytes else {
                throw InvalidOperation(description: "raw data package \(package.name) has no recorded checksum")
            }
            return ArchiveMember(path: package.relativePath, size: size, sha256: checksum)
        }
        let buffer = try await diskStore(for: transfer.destinationLocationID, db, purpose: "destination buffer")
        let archive = try buffer.rooted(bundle.relativePath)
        try buffer.requireSpace(expected.reduce(0) { $0 + $1.size }, for: "unpacking bundle \(bundle.name)")
        context.log.write("unpacking \(archive) (\(packages.count) raw data packages) into \(buffer.root)")
        let summary: ArchiveSummary
        do {
            summary = try await runBlocking { try TarArchive.extract(archive, into: RootedPath(root: buffer.root), expected: expected) }
        } catch let error as ArchiveError where error.kind == .checksumMismatch {
            // A package that does not match: if the bundle itself differs from what was sent, it
            // was damaged on the way (the transfer's read-back passed, so on the destination's
            // disk or by something writing to it since) and is sent again.
            let actual = try await runBlocking { try FileChecksum.sha256(of: archive) }
            if let checksum = bundle.checksum, actual.sha256 != checksum {
                throw BundleDamaged(transferID: transferID, path: archive.path, expected: checksum, actual: actual.sha256, detail: error.problem)
            }
            throw error
        }
        if let checksum = bundle.checksum, summary.sha256 != checksum {
            throw BundleDamaged(transferID: transferID, path: archive.path, expected: checksum, actual: summary.sha256, detail: nil)
        }
        context.log.write("\(summary.members.count) raw data packages extracted and verified")
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: summary.size, resultJSON: resultJSON(["packages": summary.members.count, "sha256": summary.sha256]),
                                    logPath: context.log.path),
            record: { db in
                for (package, member) in zip(packages, expected)
                where try await db.liveCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID) == nil {
                    _ = try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID, relativePath: member.path,
                                                        sizeBytes: member.size, checksum: member.sha256, verified: true)
                }
                try await db.recordUnpackCompleted(transferID)
            })
    }
}

/// LONG_TERM_ARCHIVE_TRANSFER: a raw data package archive from a buffer into a long-term archive
/// (disk or S3), verified there.
enum LongTermArchiveTransferExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let transferID = try require(operation.longTermArchiveTransferID, "operation \(operation.id) names no long-term archive transfer")
        let transfer = try require(try await db.longTermArchiveTransfer(id: transferID), "long-term archive transfer \(transferID) does not exist")
        let package = try require(try await db.rawDataPackage(id: transfer.rawDataPackageID), "raw data package \(transfer.rawDataPackageID) does not exist")
        guard let checksum = package.checksum, let size = package.sizeBytes else {
            throw InvalidOperation(description: "raw data package \(package.name) has no recorded checksum; it is archived once it has been built")
        }
        let buffer = try await diskStore(for: transfer.originLocationID, db, purpose: "buffer")
        let archive = try await store(for: transfer.destinationLocationID, db, s3: context.s3)
        let source = try buffer.rooted(package.relativePath)
        context.log.write("archiving \(package.name) (\(size) bytes) from \(buffer.description) into \(archive.store.description)")
        if try await runBlocking({ try archive.store.holds(package.relativePath, size: size, sha256: checksum) }) {
            context.log.write("the archive already holds the verified package; not sent again")
        } else {
            if let disk = archive.store as? DiskStore { try disk.requireSpace(size, for: "package \(package.name)") }
            let shouldStop = context.shouldStop
            _ = try await runBlocking { try archive.store.upload(file: source, to: package.relativePath, sha256: checksum, shouldStop: shouldStop) }
            context.log.write("uploaded and verified: \(size) bytes, sha256 \(checksum)")
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: size, resultJSON: resultJSON(["sha256": checksum, "size": size, "archive": archive.location.name]),
                                    logPath: context.log.path),
            record: { db in
                try await db.recordArchiveTransferCompleted(transferID)
                if try await db.liveCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID) == nil {
                    _ = try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID,
                                                        relativePath: package.relativePath, sizeBytes: size, checksum: checksum, verified: true)
                }
            })
    }
}

/// The manager asked for a deletion the database no longer allows.
public struct DeletionRefused: Error, Sendable, CustomStringConvertible {
    public var copyID: Int64
    public var reason: String
    public var description: String { "physical copy \(copyID) is not deleted: \(reason)" }
}

/// DELETION: one copy goes, only if the database still allows it. The copy row stays locked from
/// the check until it is marked DELETED, in one transaction, so nothing can start reading it
/// in between.
enum DeletionExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        if operation.stagingJobID != nil { return try await StagingCleanup.run(operation, context: context) }
        let copyID = try require(operation.physicalCopyID, "operation \(operation.id) names no physical copy")
        let s3 = context.s3
        let log = context.log
        let deleted: PhysicalCopy = try await context.db.transaction { db in
            let copy = try require(try await db.physicalCopy(id: copyID), "physical copy \(copyID) does not exist")
            if copy.status == .deleted {
                log.write("copy \(copyID) was already deleted at \(copy.deletedAt.map { "\($0)" } ?? "an earlier attempt")")
                return copy
            }
            if let reason = try await db.deletionBlocker(copyID: copyID, exceptOperation: operation.id) {
                throw DeletionRefused(copyID: copyID, reason: reason)
            }
            let target = try await store(for: copy.dataLocationID, db, s3: s3)
            log.write("deleting \(copy.relativePath) from \(target.store.description)")
            try await runBlocking { try target.store.delete(copy.relativePath) }
            try await db.markPhysicalCopyDeleted(id: copyID)
            return copy
        }
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: deleted.sizeBytes ?? 0, resultJSON: resultJSON(["copy": copyID, "path": deleted.relativePath]),
                                    logPath: context.log.path),
            record: { _ in })
    }
}

/// MONITORING: reachability and capacity (statvfs, or a HEAD of the bucket) of one location.
enum MonitoringExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let target = try await store(for: operation.dataLocationID, context.db, s3: context.s3)
        let probe = await (try? runBlocking { target.store.probe() }) ?? LocationProbe(reachable: false, errorMessage: "probe failed")
        context.log.write("\(target.store.description): \(probe.reachable ? "reachable" : "unreachable")"
                          + (probe.freeBytes.map { ", \($0) bytes free of \(probe.totalBytes ?? 0)" } ?? "")
                          + (probe.errorMessage.map { " (\($0))" } ?? ""))
        let locationID = operation.dataLocationID
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: 0, resultJSON: resultJSON(["reachable": probe.reachable, "free_bytes": probe.freeBytes ?? -1]),
                                    logPath: context.log.path),
            record: { db in
                try await db.recordLocationStatus(LocationStatus(dataLocationID: locationID, measuredAt: Date(), reachable: probe.reachable,
                                                                 totalBytes: probe.totalBytes, freeBytes: probe.freeBytes,
                                                                 usedBytes: probe.usedBytes, errorMessage: probe.errorMessage))
            })
    }
}
