import Archiving
import Foundation
import OpsDB
import Storage

/// What a successful operation hands back: its report, and the database changes that record its
/// effects (applied in the same transaction that marks the operation succeeded).
public struct ExecutionOutcome: Sendable {
    public var report: OperationReport
    public var record: @Sendable (OpsDB) async throws -> Void
}

/// The context an operation runs in.
public struct ExecutionContext: Sendable {
    public var db: OpsDB
    public var log: OperationLog
    public var stop: StopSignal
    public var s3: S3Settings

    /// For storage calls, which poll it between blocks.
    public var shouldStop: ShouldStop {
        let stop = self.stop
        return { stop.stopReason != nil }
    }
}

/// An operation this version cannot run (a storage type or an operation not built yet). Fails the
/// attempt with a message that says so.
public struct UnsupportedOperation: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The inputs of an operation do not describe work that can be done (missing target, no buffer).
public struct InvalidOperation: Error, Sendable, CustomStringConvertible {
    public var description: String
}

func manifestJSON(_ members: [ArchiveMember]) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(members), as: UTF8.self)
}

/// RAW_DATA_PACKAGE_CREATION: the package's raw files, from the SOURCE location, into
/// `<package>.tar` in the buffer named by the operation's target location, checksums verified
/// against those registered; the archive checksum and manifest go to the database, with the
/// package's physical copy at the buffer.
enum RawDataPackageCreation {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        guard let packageID = operation.rawDataPackageID, let package = try await db.rawDataPackage(id: packageID) else {
            throw InvalidOperation(description: "operation \(operation.id) names no raw data package")
        }
        guard let bufferID = operation.targetLocationID else {
            throw InvalidOperation(description: "operation \(operation.id) names no buffer to build package \(package.name) in")
        }
        let files = try await db.rawDataFiles(packageID: packageID)
        guard !files.isEmpty else { throw InvalidOperation(description: "raw data package \(package.name) has no files") }
        let source = try await diskStore(for: package.sourceLocationID, db, purpose: "source")
        let buffer = try await diskStore(for: bufferID, db, purpose: "buffer")
        let destination = try buffer.rooted(package.relativePath)
        let expected = files.map {
            ArchiveMember(path: $0.relativePath, size: $0.sizeBytes, sha256: $0.checksumAlgorithm == "sha256" ? $0.checksum : "")
        }
        context.log.write("packaging \(files.count) files of \(package.name) from \(source.root) into \(destination)")

        let summary: ArchiveSummary
        if (try? destination.status()) != nil, let existing = try? reuse(destination, expected: expected, files: files) {
            context.log.write("\(destination) already holds the verified archive (sha256 \(existing.sha256)); not rebuilt")
            summary = existing
        } else {
            let inputs = try files.map {
                ArchiveInput(source: try source.rooted($0.relativePath), memberPath: $0.relativePath,
                             expectedSHA256: $0.checksumAlgorithm == "sha256" ? $0.checksum : nil)
            }
            // Room for the package and, later, for the bundle it goes into in the same buffer: a
            // buffer filled with packages that cannot be bundled could never empty again.
            let bound = TarArchive.sizeBound(memberSizes: files.map(\.sizeBytes))
            try buffer.requireSpace(2 * bound, for: "package \(package.name) (\(bound) bytes, and as much again to bundle it)")
            let stop = context.stop
            summary = try await runBlocking {
                try TarArchive.create(at: destination, inputs: inputs) { _ in try stop.check() }
            }
            for (file, member) in zip(files, summary.members) where member.size != file.sizeBytes {
                throw ArchiveError(kind: .checksumMismatch, path: try source.rooted(file.relativePath).path,
                                   problem: "\(member.size) bytes, but \(file.sizeBytes) were registered")
            }
            context.log.write("wrote \(summary.size) bytes, sha256 \(summary.sha256)")
        }
        let manifest = try manifestJSON(summary.members)
        let result = try manifestJSON([ArchiveMember(path: package.relativePath, size: summary.size, sha256: summary.sha256)])
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: summary.size, resultJSON: "{\"archive\": \(result), \"members\": \(summary.members.count)}",
                                    logPath: context.log.path),
            record: { db in
                try await db.recordRawDataPackageArchive(packageID, sizeBytes: summary.size, checksum: summary.sha256, manifestJSON: manifest)
                if try await db.liveCopy(of: .rawDataPackage(packageID), at: bufferID) == nil {
                    _ = try await db.insertPhysicalCopy(of: .rawDataPackage(packageID), at: bufferID, relativePath: package.relativePath,
                                                        sizeBytes: summary.size, checksum: summary.sha256, verified: true)
                }
            })
    }

    /// An archive left by an earlier attempt counts when every member matches the registered files.
    static func reuse(_ path: RootedPath, expected: [ArchiveMember], files: [RawDataFile]) throws -> ArchiveSummary? {
        let summary = try TarArchive.scan(path)
        guard summary.members.count == expected.count else { return nil }
        for (member, want) in zip(summary.members, expected) {
            guard member.path == want.path, member.size == want.size, want.sha256.isEmpty || member.sha256 == want.sha256 else { return nil }
        }
        return summary
    }
}

/// Runs blocking file work on a dispatch thread, off Swift's cooperative pool, so heartbeats and
/// signal handling keep running while a large archive is written.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// One log file per operation, next to the batch job's logs; later attempts append to it.
public final class OperationLog: @unchecked Sendable {
    public let path: String
    private let handle: FileHandle
    private let lock = NSLock()

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw InvalidOperation(description: "cannot open the operation log \(path): \(String(cString: strerror(errno)))")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// A timestamped line. A full or vanished log disk must not fail the data operation itself,
    /// so a failed write is reported on standard error instead.
    public func write(_ line: String) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        lock.withLock {
            do {
                try handle.write(contentsOf: Data("\(stamp) \(line)\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("ccat-runner: cannot write \(path): \(error)\n".utf8))
            }
        }
    }
}
