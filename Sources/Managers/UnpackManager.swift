import Logging
import OpsDB

/// 4. Arrived bundles -> DATA_TRANSFER_UNPACKING at the destination buffer.
public struct UnpackManager: ManagerCycle {
    public let name = "unpack-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let places = try await Places.load(db)
        var created = 0
        let setAside = try await SetAside.load(db, manager: name)
        for id in try await db.transfersToUnpack(limit: settings.batchSize) {
            created += try await setAside.attempt(db, "transfer \(id)", logger: logger) {
                guard let transfer = try await db.dataTransfer(id: id) else { return 0 }
                return try await places.schedule(db, .dataTransferUnpacking, at: transfer.destinationLocationID, target: .dataTransfer(id),
                                                 sizeHintBytes: transfer.bytesTransferred ?? 0)
            }
        }
        return created
    }
}
