import Foundation
import Logging
import OpsDB
import Storage

/// No verified copy of the object is left anywhere: no retry can repair it, a human must.
struct NoVerifiedCopyLeft: SettledFailure {
    var copy: PhysicalCopy
    var location: String
    var tried: [String]

    var description: String {
        "copy \(copy.id) of \(copy.relativePath) at \(location) is \(copy.status.rawValue) and no verified copy is left to repair it from"
            + (tried.isEmpty ? " (no other archive or buffer holds one)" : "; tried: \(tried.joined(separator: "; "))")
            + ". The data may be lost: look for another copy (the instrument's own disks, a backup) and register it, "
            + "then 'ccat ops retry' this operation"
    }

    func settle(_ operation: OperationRecord, owner: String, db: OpsDB, log: OperationLog, logger: Logger) async throws {
        log.write("\(self)")
        try await db.requireIntervention(operation.id, owner: owner, errorClass: "no_verified_copy", message: "\(self)", logPath: log.path)
        logger.error("an archive copy cannot be repaired: no verified copy is left", metadata: [
            "operation": "\(operation.id)", "copy": "\(copy.id)", "path": "\(copy.relativePath)", "location": "\(location)"])
    }
}

/// ARCHIVE_REPAIR: a lost or corrupted archive copy is written again from another verified copy
/// (another site's archive first, then a buffer that still holds it), verified at the
/// destination by the store's write, and recorded; the damaged object kept aside is removed only
/// after that. A rerun after a crash finds the verified bytes in place and only records them.
enum ArchiveRepairExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let log = context.log
        let copyID = try target(of: operation, "physical copy") { if case .physicalCopy(let id) = $0 { id } else { nil } }
        let copy = try require(try await db.physicalCopy(id: copyID), "physical copy \(copyID) does not exist")
        let destination = try await store(for: copy.dataLocationID, db, s3: context.s3)
        guard copy.status == .corrupted || copy.status == .missing else {
            log.write("copy \(copyID) is \(copy.status.rawValue): nothing to repair")
            return ExecutionOutcome(report: OperationReport(bytesProcessed: 0, resultJSON: resultJSON(["copy": copyID, "repaired": false]),
                                                            logPath: log.path), record: { _ in })
        }
        guard let size = copy.sizeBytes, let checksum = copy.checksum else {
            throw InvalidOperation(description: "copy \(copyID) has no recorded size and checksum to repair it against")
        }
        let key = copy.relativePath
        var source = "an earlier attempt"
        var sourceLocationID: Int64?
        // Read back in full: S3's recorded size and checksum stay the same when the bytes rot.
        let present = try await runBlocking { try destination.store.readBack(key, shouldStop: context.shouldStop) }
        if let present, present.size == size, present.sha256 == checksum {
            log.write("\(key) holds the verified bytes, read back in full (an earlier attempt wrote them)")
        } else {
            if present != nil {
                let aside = try await Quarantine.moveAside(copy, in: destination.store, log: log)
                try await db.recordQuarantine(copyID: copyID, path: aside)
            }
            (source, sourceLocationID) = try await writeFromAnotherCopy(copy, size: size, checksum: checksum, into: destination, context: context)
        }
        let recorded = try await db.quarantinedObjects(copyID: copyID)
        let found = try await runBlocking { try Quarantine.objects(of: copy, in: destination.store) }
        for aside in Set(recorded + found).sorted() {
            try await runBlocking { try destination.store.delete(aside) }
            log.write("removed the damaged object kept at \(aside)")
        }
        let resolution = "repaired from \(source) by operation \(operation.id)"
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: sourceLocationID == nil ? 0 : size,
                                    resultJSON: resultJSON(["copy": copyID, "repaired": true, "source": source,
                                                            "source_location_id": sourceLocationID.map { Int($0) } ?? -1]),
                                    logPath: log.path),
            record: { db in try await db.recordCopyRepaired(copyID, resolution: resolution) })
    }

    /// Tries each verified copy in turn; returns which one the bytes came from, and its location.
    static func writeFromAnotherCopy(_ copy: PhysicalCopy, size: Int64, checksum: String,
                                     into destination: (location: DataLocation, store: any ObjectStore),
                                     context: ExecutionContext) async throws -> (name: String, locationID: Int64) {
        let db = context.db
        let log = context.log
        var tried: [String] = []
        for candidate in try await db.repairSources(for: copy) {
            let source = try await store(for: candidate.dataLocationID, db, s3: context.s3)
            let name = "copy \(candidate.id) at \(source.location.name)"
            if let host = try await db.sshHost(of: candidate.dataLocationID) {
                tried.append("\(name): reachable only over ssh (\(host)), which repairs do not use yet")
                continue
            }
            do {
                log.write("writing \(candidate.relativePath) (\(size) bytes) from \(source.store.description) into \(destination.store.description)")
                try await copyVerified(candidate.relativePath, from: source.store, to: copy.relativePath, in: destination.store,
                                       size: size, checksum: checksum, scratch: "ccat-repair-copy-\(copy.id)", shouldStop: context.shouldStop)
                log.write("written and verified: \(size) bytes, sha256 \(checksum)")
                return (name, candidate.dataLocationID)
            } catch let error as StorageError {
                log.write("\(name) could not be used: \(error)")
                tried.append("\(name): \(error)")
            }
        }
        throw NoVerifiedCopyLeft(copy: copy, location: destination.location.name, tried: tried)
    }

    /// Copies one object between stores, verified against `checksum` by the write. Between two
    /// S3 stores the bytes pass through a scratch file in `TMPDIR` (one name per copy, so a rerun
    /// replaces what a killed attempt left), removed afterwards.
    static func copyVerified(_ sourceKey: String, from source: any ObjectStore, to key: String, in destination: any ObjectStore,
                             size: Int64, checksum: String, scratch: String, shouldStop: @escaping ShouldStop) async throws {
        try await runBlocking {
            if let sourceDisk = source as? DiskStore {
                try destination.upload(file: try sourceDisk.rooted(sourceKey), to: key, sha256: checksum, shouldStop: shouldStop)
            } else if let destinationDisk = destination as? DiskStore {
                try source.download(sourceKey, to: try destinationDisk.path(of: key, creatingParent: true), expectedSize: size,
                                    expectedSHA256: checksum, shouldStop: shouldStop)
            } else {
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent(scratch)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                let local = directory.appendingPathComponent("object").path
                try source.download(sourceKey, to: local, expectedSize: size, expectedSHA256: checksum, shouldStop: shouldStop)
                try destination.upload(file: local, to: key, sha256: checksum, shouldStop: shouldStop)
            }
        }
    }
}
