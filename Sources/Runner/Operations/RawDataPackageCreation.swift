import Archiving
import Foundation
import OpsDB
import Storage

/// RAW_DATA_PACKAGE_CREATION: the package's raw files, from the SOURCE location, into
/// `<package>.tar` in the buffer named by the operation's target location, checksums verified
/// against those registered; the archive checksum and manifest go to the database, with the
/// package's physical copy at the buffer.
enum RawDataPackageCreation {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let packageID = try target(of: operation, "raw data package") { if case .rawDataPackage(let id) = $0 { id } else { nil } }
        guard let package = try await db.rawDataPackage(id: packageID) else {
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
                try await db.recordVerifiedCopy(of: .rawDataPackage(packageID), at: bufferID, relativePath: package.relativePath,
                                                sizeBytes: summary.size, checksum: summary.sha256)
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
