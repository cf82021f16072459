import Logging
import OpsDB

/// 5. Verified packages in a buffer -> LONG_TERM_ARCHIVE_TRANSFER into each active archive of
/// that site, verified after upload by the runner.
public struct ArchiveManager: ManagerCycle {
    public let name = "archive-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        for candidate in try await db.packagesToArchive(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "package \(candidate.packageID) into archive \(candidate.archiveID)", logger: logger) {
                _ = try await db.createLongTermArchiveTransfer(packageID: candidate.packageID, originLocationID: candidate.bufferID,
                                                               destinationLocationID: candidate.archiveID)
                return 1
            }
        }
        for id in try await db.archiveTransfersWithoutOperation(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "archive transfer \(id)", logger: logger) {
                guard let transfer = try await db.longTermArchiveTransfer(id: id), let package = try await db.rawDataPackage(id: transfer.rawDataPackageID) else { return 0 }
                return try await places.schedule(db, .longTermArchiveTransfer, at: transfer.destinationLocationID,
                                                 target: .longTermArchiveTransfer(id), sizeHintBytes: package.sizeBytes ?? 0)
            }
        }
        return created
    }
}
