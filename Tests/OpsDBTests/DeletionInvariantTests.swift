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
            let fixture = try await ArchiveSitesFixture.make(connection)
            let db = fixture.db
            let package = try await fixture.package([try await fixture.registerFile("a.fits", bytes: 1000)])
            let temporary = try await fixture.copy(of: package, at: fixture.buffer)
            var archived: [PhysicalCopy] = []
            for archive in fixture.archives { archived.append(try await fixture.copy(of: package, at: archive)) }
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

    /// A copy kept in a deactivated archive does not count, even at a site whose other archive is
    /// active: the buffer copy stays until an active archive there holds the package.
    @Test func aCopyInARetiredArchiveKeepsTheBufferCopy() async throws {
        try await withTestDatabase { _, connection in
            let fixture = try await ArchiveSitesFixture.make(connection)
            let db = fixture.db
            let package = try await fixture.package([try await fixture.registerFile("a.fits", bytes: 1000)])
            let temporary = try await fixture.copy(of: package, at: fixture.buffer)
            let retired = try await db.insertLocation(siteID: fixture.archives[0].siteID, name: "old_archive", type: .longTermArchive,
                                                      storage: .disk(rootPath: "/data/cologne/old_archive"))
            try await fixture.copy(of: package, at: retired)
            try await fixture.copy(of: package, at: fixture.archives[1])
            #expect(try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0) == nil, "both sites hold it while the old archive is active")
            try await connection.execute("UPDATE data_location SET active = false WHERE id = \(retired.id)")
            let blocker = try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0)
            #expect(blocker?.contains("1 of 2 archive sites") == true, "\(blocker ?? "nothing blocks")")
            try await fixture.copy(of: package, at: fixture.archives[0])
            #expect(try await db.deletionBlocker(copyID: temporary.id, exceptOperation: 0) == nil)
        }
    }
}
