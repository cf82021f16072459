import Logging
import OpsDB

/// 5. Verified packages in a buffer -> LONG_TERM_ARCHIVE_TRANSFER into each active archive of
/// that site, verified after upload by the runner.
public struct ArchiveManager: ManagerCycle {
    public let name = "archive-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        var created = 0
        for candidate in try await db.packagesToArchive(limit: settings.batchSize) {
            created += try await work.attempt("package \(candidate.packageID) into archive \(candidate.archiveID)") {
                _ = try await db.createLongTermArchiveTransfer(packageID: candidate.packageID, originLocationID: candidate.bufferID,
                                                               destinationLocationID: candidate.archiveID)
                return 1
            }
        }
        created += try await work.scheduleEach(try await db.archiveTransfersWithoutOperation(limit: settings.batchSize),
                                               item: { "archive transfer \($0)" }) { id in
            guard let transfer = try await db.longTermArchiveTransfer(id: id), let package = try await db.rawDataPackage(id: transfer.rawDataPackageID) else {
                return nil
            }
            return OperationPlan(.longTermArchiveTransfer, at: transfer.destinationLocationID, target: .longTermArchiveTransfer(id),
                                 sizeHintBytes: package.sizeBytes ?? 0)
        }
        return created
    }
}
