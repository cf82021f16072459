import OpsDB

/// Which operations run at which kind of location (the reference system's
/// `QUEUE_OPERATIONS_BY_LOCATION_TYPE`). One queue exists per active location and operation.
public enum OperationMatrix {
    public static func operations(for type: LocationType) -> [OperationType] {
        switch type {
        case .source: return [.rawDataPackageCreation, .deletion, .monitoring]
        case .buffer: return [.dataTransferPackageCreation, .dataTransfer, .dataTransferUnpacking, .deletion, .monitoring]
        case .longTermArchive: return [.longTermArchiveTransfer, .fixityCheck, .consistencyAudit, .archiveRepair, .monitoring]
        case .processing: return [.staging, .deletion, .consistencyAudit, .monitoring]
        }
    }

    /// Storage a location type supports in this version: staging, unpacking and packaging need a
    /// POSIX file tree, so only long-term archives may be S3 (or tape).
    public static func supportedStorage(for type: LocationType) -> [StorageType] {
        switch type {
        case .longTermArchive: return [.disk, .s3, .tape]
        case .source, .buffer, .processing: return [.disk]
        }
    }

    /// `{site}_{location}_{operation}`, e.g. `cologne_buffer_data_transfer`. Site and location names
    /// are restricted to `[a-z0-9_]`, so every queue name is a valid Slurm job name.
    public static func queueName(site: String, location: String, operation: OperationType) -> String {
        "\(site)_\(location)_\(operation.queueSuffix)"
    }
}
