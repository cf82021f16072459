import Archiving
import Foundation
import Logging
import OpsDB
import Storage

/// DATA_TRANSFER_UNPACKING: the arrived bundle is extracted into the destination buffer and every
/// raw data package archive is verified against its recorded checksum; each becomes a verified
/// copy at the buffer.
/// The bundle at the destination is not the one that was sent: it goes back to its transfer.
struct BundleDamaged: SettledFailure {
    var transferID: Int64
    var path: String
    var expected: String
    var actual: String
    var detail: String?

    var description: String {
        "bundle \(path) arrived damaged: SHA-256 \(actual), but \(expected) was sent\(detail.map { " (\($0))" } ?? ""); it is removed and transferred again"
    }

    /// The damaged copy goes, and the transfer goes back to PENDING (or FAILED after its last
    /// send), with the unpacking ended, in one transaction.
    func settle(_ operation: OperationRecord, owner: String, db: OpsDB, log: OperationLog, logger: Logger) async throws {
        log.write("\(self)")
        if unlink(path) != 0 && errno != ENOENT {
            log.write("cannot remove \(path): \(String(cString: strerror(errno))); the next transfer replaces it")
        }
        let retransfer = try await db.sendTransferBack(operationID: operation.id, owner: owner, transferID: transferID,
                                                       message: "\(self)", logPath: log.path)
        logger.error("bundle damaged at its destination", metadata: ["operation": "\(operation.id)", "transfer": "\(transferID)",
                                                                     "retransfer": "\(retransfer)"])
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
                for (package, member) in zip(packages, expected) {
                    try await db.recordVerifiedCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID, relativePath: member.path,
                                                    sizeBytes: member.size, checksum: member.sha256)
                }
                try await db.recordUnpackCompleted(transferID)
            })
    }
}
