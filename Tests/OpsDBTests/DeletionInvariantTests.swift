import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// Temporary copies go only while every archive site holds a good copy: an archive copy found
/// CORRUPTED or MISSING (by a fixity check or an audit), or never verified, does not count.
@Suite("Deletion counts only good archive copies")
struct DeletionInvariantTests {
    @Test func aCorruptedMissingOrUnverifiedArchiveCopyKeepsTheBufferCopy() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let ccat = try await db.insertSite(name: "CCAT", shortName: "ccat")
            let source = try await db.insertLocation(siteID: ccat.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source"))
            let buffer = try await db.insertLocation(siteID: ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
            var archives: [DataLocation] = []
            for site in ["cologne", "us"] {
                let archiveSite = try await db.insertSite(name: site, shortName: site)
                archives.append(try await db.insertLocation(siteID: archiveSite.id, name: "long_term_archive", type: .longTermArchive,
                                                            storage: .disk(rootPath: "/data/\(site)/archive")))
            }
            let checksum = String(repeating: "a", count: 64)
            let observation = try await db.upsertObservation(obsID: "obs-1")
            let file = try await db.registerRawDataFile(NewRawDataFile(relativePath: "obs-1/a.fits", sizeBytes: 1000, checksum: checksum,
                                                                       executedObsUnitID: observation.id, sourceLocationID: source.id))
            let package = try await db.createRawDataPackage(name: "obs-1", observationID: observation.id, sourceLocationID: source.id,
                                                            relativePath: "packages/obs-1.tar", fileIDs: [file.file.id])
            try await db.recordRawDataPackageArchive(package.id, sizeBytes: 4096, checksum: checksum, manifestJSON: "[]")
            let temporary = try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: buffer.id, relativePath: package.relativePath,
                                                            sizeBytes: 4096, checksum: checksum, verified: true)
            var archived: [PhysicalCopy] = []
            for archive in archives {
                archived.append(try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: archive.id, relativePath: package.relativePath,
                                                                sizeBytes: 4096, checksum: checksum, verified: true))
            }
            // Both archive sites hold a verified copy: the buffer copy may go.
            #expect(try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0) == nil)
            for status in ["CORRUPTED", "MISSING"] {
                try await connection.execute("UPDATE physical_copy SET status = \(status)::physical_copy_status WHERE id = \(archived[1].id)")
                let blocker = try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0)
                #expect(blocker?.contains("1 of 2 archive sites") == true, "\(status): \(blocker ?? "nothing blocks")")
            }
            try await connection.execute("UPDATE physical_copy SET status = 'PRESENT', verified_at = NULL WHERE id = \(archived[1].id)")
            let unverified = try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0)
            #expect(unverified?.contains("1 of 2 archive sites") == true, "unverified: \(unverified ?? "nothing blocks")")
            // A good copy again (repaired): the buffer copy may go.
            try await connection.execute("UPDATE physical_copy SET verified_at = now() WHERE id = \(archived[1].id)")
            #expect(try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0) == nil)
        }
    }
}
