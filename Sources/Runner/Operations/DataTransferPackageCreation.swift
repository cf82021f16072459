import Archiving
import Foundation
import OpsDB
import Storage

/// DATA_TRANSFER_PACKAGE_CREATION: the bundle's raw data package archives, from the buffer, into
/// one transfer archive next to them, each verified against its recorded checksum on the way.
enum DataTransferPackageCreation {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let bundleID = try target(of: operation, "data transfer package") { if case .dataTransferPackage(let id) = $0 { id } else { nil } }
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
                try await db.recordVerifiedCopy(of: .dataTransferPackage(bundleID), at: bundle.originLocationID, relativePath: bundle.relativePath,
                                                sizeBytes: summary.size, checksum: summary.sha256)
            })
    }
}
