import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Testing
import TestSupport

@Suite("A buffer short of space: bundles sized to fit, sent without waiting")
struct BufferSpaceTests {
    /// Four packages of 400 kB in a buffer that had 1 MB free at its last check: bundles are made
    /// at once (not after `bundleMaxAgeSeconds`), and none is larger than the free space, so each
    /// can be written and the packages can leave. With room to spare, they wait for more as before.
    @Test func bundlesFitTheFreeSpaceOfAPressedBuffer() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let site = try await db.insertSite(name: "CCAT", shortName: "ccat")
            let source = try await db.insertLocation(siteID: site.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source"))
            let buffer = try await db.insertLocation(siteID: site.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
            let packageBytes: Int64 = 400_000
            let checksum = String(repeating: "0", count: 64)
            for index in 1...4 {
                let observation = try await db.upsertObservation(obsID: "obs-\(index)")
                let file = try await db.registerRawDataFile(NewRawDataFile(relativePath: "obs-\(index)/a.fits", sizeBytes: packageBytes - 3_000, checksum: checksum,
                                                                           executedObsUnitID: observation.id, sourceLocationID: source.id))
                let package = try await db.createRawDataPackage(name: "obs-\(index)", observationID: observation.id, sourceLocationID: source.id,
                                                                relativePath: "packages/obs-\(index).tar", fileIDs: [file.file.id])
                try await db.recordRawDataPackageArchive(package.id, sizeBytes: packageBytes, checksum: checksum, manifestJSON: "[]")
                _ = try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: buffer.id, relativePath: package.relativePath,
                                                    sizeBytes: packageBytes, checksum: checksum, verified: true)
            }
            let manager = DataTransferPackageManager(settings: ManagerSettings())
            func status(free: Int64) async throws {
                try await db.recordLocationStatus(LocationStatus(dataLocationID: buffer.id, measuredAt: Date(), reachable: true,
                                                                 totalBytes: 50_000_000, freeBytes: free, usedBytes: 50_000_000 - free, errorMessage: nil))
            }
            func bundles() async throws -> [(packages: Int, bytes: Int64)] {
                try await connection.query("""
                    SELECT count(*)::int AS n, sum(size_bytes)::bigint AS bytes FROM raw_data_package
                    WHERE data_transfer_package_id IS NOT NULL GROUP BY data_transfer_package_id ORDER BY 1
                    """).map { (try $0["n"], try $0["bytes"]) }
            }

            // Plenty of room: the packages wait for more (or for the age limit).
            try await status(free: 40_000_000)
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            #expect(try await bundles().isEmpty)

            // 1 MB free: two bundles of two packages each, every one of them fitting.
            try await status(free: 1_000_000)
            _ = try await manager.cycle(db, logger: Logger(label: "test"))
            let made = try await bundles()
            #expect(made.map(\.packages) == [2, 2], "\(made)")
            #expect(made.allSatisfy { $0.bytes + 1024 + Int64($0.packages) * 2560 <= 1_000_000 }, "\(made)")
        }
    }
}
