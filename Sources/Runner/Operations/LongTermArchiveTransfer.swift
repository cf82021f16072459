import Foundation
import OpsDB
import Storage

/// LONG_TERM_ARCHIVE_TRANSFER: a raw data package archive from a buffer into a long-term archive
/// (disk or S3), verified there.
enum LongTermArchiveTransferExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let transferID = try target(of: operation, "long-term archive transfer") { if case .longTermArchiveTransfer(let id) = $0 { id } else { nil } }
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
                try await db.recordVerifiedCopy(of: .rawDataPackage(package.id), at: transfer.destinationLocationID,
                                                relativePath: package.relativePath, sizeBytes: size, checksum: checksum)
            })
    }
}
