import Logging
import OpsDB

/// 4. Arrived bundles -> DATA_TRANSFER_UNPACKING at the destination buffer.
public struct UnpackManager: ManagerCycle {
    public let name = "unpack-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        return try await work.scheduleEach(try await db.transfersToUnpack(limit: settings.batchSize), item: { "transfer \($0)" }) { id in
            guard let transfer = try await db.dataTransfer(id: id) else { return nil }
            return OperationPlan(.dataTransferUnpacking, at: transfer.destinationLocationID, target: .dataTransfer(id),
                                 sizeHintBytes: transfer.bytesTransferred ?? 0)
        }
    }
}
