import Archiving
import Foundation
import OpsDB
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The data transfer an operation names, and the bundle it carries.
func transferAndBundle(_ operation: OperationRecord, _ db: OpsDB) async throws -> (DataTransfer, DataTransferPackage) {
    let transferID = try target(of: operation, "data transfer") { if case .dataTransfer(let id) = $0 { id } else { nil } }
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
            // The key must stay inside the root; the root itself is on the other host, not here.
            let remote = RemotePath(host: remoteHost, path: try destination.rooted(bundle.relativePath).path)
            if try await remote.holds(size: size, sha256: checksum) {
                context.log.write("\(remoteHost) already holds the verified bundle; not sent again")
            } else {
                if transfer.method == .bbcp { try await remote.makeParentDirectory() }
                // A bandwidth window in force on the link: this copy's share of its cap.
                let share = try await db.linkRateShare(transferID: transferID)
                if let share {
                    if transfer.method == .rsync {
                        context.log.write("the link's bandwidth window is in force: this transfer's share is \(LinkWindow.rateText(share))")
                    } else {
                        context.log.write("the link's bandwidth window is in force (share \(LinkWindow.rateText(share))), but \(transfer.method.rawValue) cannot be limited; use rsync on this route")
                    }
                }
                // While it runs, the share is asked again (a window opening or closing, the link's
                // jobs changing) every CCAT_BANDWIDTH_RECHECK seconds (default 60).
                let recheck = ProcessInfo.processInfo.environment["CCAT_BANDWIDTH_RECHECK"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 60
                let currentShare: @Sendable () async throws -> Int64? = { try await db.linkRateShare(transferID: transferID) }
                let reportSent: @Sendable (Int64) async throws -> Void = { try await db.recordLinkBytes(transferID: transferID, bytes: $0) }
                var copy = ExternalCopy(method: transfer.method, source: source.path, target: remote.copyTarget, log: context.log, stop: context.stop,
                                        remote: true, bandwidthLimitBitsPerSecond: share)
                copy.currentShare = currentShare
                copy.shareInterval = .milliseconds(Int(recheck * 1000))
                if transfer.method == .rsync { copy.reportSent = reportSent }
                try await copy.run()
                // bbcp's progress is not followed: its bytes count for the link once it is done.
                if transfer.method == .bbcp { try await db.recordLinkBytes(transferID: transferID, bytes: size) }
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
                try await db.recordVerifiedCopy(of: .dataTransferPackage(bundle.id), at: transfer.destinationLocationID,
                                                relativePath: bundle.relativePath, sizeBytes: size, checksum: checksum)
            })
    }
}
