import Foundation
import Postgres

// Row types of the ops database. Properties map to columns by snake_case (`siteID` -> `site_id`);
// jsonb columns are carried as their JSON text.

public struct Site: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var shortName: String
    public var location: String?
    public var createdAt: Date
    public var updatedAt: Date
}

public struct DataLocation: Codable, Sendable, Equatable {
    public var id: Int64
    public var siteID: Int64
    public var name: String
    public var locationType: LocationType
    public var storageType: StorageType
    public var priority: Int
    public var active: Bool
    public var fillThresholdPercent: Int
    /// NULL: the location type's default retention.
    public var retentionSeconds: Int64?
    public var description: String?
    public var createdAt: Date
    public var updatedAt: Date
}

public struct DiskDataLocation: Codable, Sendable, Equatable {
    public var dataLocationID: Int64
    public var rootPath: String
}

public struct S3DataLocation: Codable, Sendable, Equatable {
    public var dataLocationID: Int64
    public var endpointURL: String
    public var bucket: String
    public var region: String
    public var prefix: String
    /// `env:PREFIX` or `file:/path`: where the keys are read from, never the keys.
    public var credentialsSource: String
    public var pathStyle: Bool
}

public struct TapeDataLocation: Codable, Sendable, Equatable {
    public var dataLocationID: Int64
    public var library: String
    public var pool: String?
}

/// A location's storage, as stored in its subtype table.
public enum LocationStorage: Sendable, Equatable {
    case disk(rootPath: String)
    case s3(endpointURL: String, bucket: String, region: String, prefix: String, credentialsSource: String, pathStyle: Bool)
    case tape(library: String, pool: String?)

    public var storageType: StorageType {
        switch self {
        case .disk: return .disk
        case .s3: return .s3
        case .tape: return .tape
        }
    }
}

public struct InstrumentModule: Codable, Sendable, Equatable {
    public var id: Int64
    public var instrument: String
    public var name: String
    public var description: String?
}

public struct ExecutedObsUnit: Codable, Sendable, Equatable {
    public var id: Int64
    public var obsID: String
    public var sourceName: String?
    public var startTime: Date?
    public var endTime: Date?
    public var createdAt: Date
}

public struct RawDataFile: Codable, Sendable, Equatable {
    public var id: Int64
    public var filename: String
    public var relativePath: String
    public var sizeBytes: Int64
    public var checksum: String
    public var checksumAlgorithm: String
    public var executedObsUnitID: Int64
    public var instrumentModuleID: Int64?
    public var sourceLocationID: Int64
    public var rawDataPackageID: Int64?
    public var registeredAt: Date
}

public struct RawDataPackage: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var executedObsUnitID: Int64
    public var sourceLocationID: Int64
    public var status: Status
    public var relativePath: String
    public var sizeBytes: Int64?
    public var checksum: String?
    public var checksumAlgorithm: String
    public var manifest: String?
    public var dataTransferPackageID: Int64?
    public var createdAt: Date
    public var updatedAt: Date
}

public struct DataTransferPackage: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var originLocationID: Int64
    public var status: Status
    public var relativePath: String
    public var sizeBytes: Int64?
    public var checksum: String?
    public var checksumAlgorithm: String
    public var createdAt: Date
    public var updatedAt: Date
}

public struct PhysicalCopy: Codable, Sendable, Equatable {
    public var id: Int64
    public var kind: PhysicalCopyKind
    public var rawDataFileID: Int64?
    public var rawDataPackageID: Int64?
    public var dataTransferPackageID: Int64?
    public var dataLocationID: Int64
    public var stagingJobID: Int64?
    public var status: PhysicalCopyStatus
    public var relativePath: String
    public var sizeBytes: Int64?
    public var checksum: String?
    /// When the copy was written and verified.
    public var verifiedAt: Date?
    /// When a fixity pass (or a repair) last found its bytes whole.
    public var fixityCheckedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var deletionScheduledAt: Date?
    public var deletedAt: Date?
}

public struct DataTransferRoute: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var originSiteID: Int64
    public var destinationSiteID: Int64
    public var routeType: RouteType
    public var relaySiteID: Int64?
    public var originLocationID: Int64?
    public var destinationLocationID: Int64?
    public var method: TransferMethod
    public var active: Bool
}

public struct DataTransfer: Codable, Sendable, Equatable {
    public var id: Int64
    public var dataTransferPackageID: Int64
    public var originLocationID: Int64
    public var destinationLocationID: Int64
    public var routeID: Int64?
    public var method: TransferMethod
    public var status: Status
    public var unpackStatus: Status
    public var attempts: Int
    public var unpackAttempts: Int
    public var bytesTransferred: Int64?
    public var errorMessage: String?
    public var unpackErrorMessage: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var unpackedAt: Date?
}

public struct DataTransferLog: Codable, Sendable, Equatable {
    public var id: Int64
    public var dataTransferID: Int64?
    public var operationID: Int64?
    public var logPath: String
    public var summary: String?
    public var createdAt: Date
}

public struct LongTermArchiveTransfer: Codable, Sendable, Equatable {
    public var id: Int64
    public var rawDataPackageID: Int64
    public var originLocationID: Int64
    public var destinationLocationID: Int64
    public var status: Status
    public var attempts: Int
    /// True after 3 attempts that did not complete.
    public var requiresIntervention: Bool
    public var errorMessage: String?
    public var startedAt: Date?
    public var finishedAt: Date?
}

public struct StagingRequest: Codable, Sendable, Equatable {
    public var id: Int64
    public var publicID: UUID
    /// The selection as JSON (see `StagingSelection`).
    public var selection: String
    public var destinationLocationID: Int64?
    /// Filled by the daemon from the decoded munge credential.
    public var uid: Int?
    public var gid: Int?
    public var username: String?
    /// The database login that inserted the request.
    public var submittedBy: String
    public var status: StagingRequestStatus
    public var reason: String?
    public var packageCount: Int?
    public var totalBytes: Int64?
    public var submittedAt: Date
    public var updatedAt: Date
    public var readyAt: Date?
    public var releasedAt: Date?
    public var expiresAt: Date?
    /// Staged for this Slurm job (its burst-buffer directive), on behalf of its owner.
    public var slurmJobID: Int64?
    /// The directive said `keep`: the job's end does not release the data.
    public var keepAfterJob: Bool
    /// Asked with --slurm-dependency: a sentinel job is released when the data is ready.
    public var slurmDependency: Bool
    public var sentinelJobID: Int64?
    public var sentinelState: SentinelState?
}

public struct StagingJob: Codable, Sendable, Equatable {
    public var id: Int64
    public var stagingRequestID: Int64?
    public var destinationLocationID: Int64
    public var originLocationID: Int64?
    public var targetDirectory: String
    public var status: Status
    public var attempts: Int
    public var errorMessage: String?
}

/// One unit of runner work (`operation` table).
public struct OperationRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var operationType: OperationType
    public var queue: String
    public var dataLocationID: Int64
    public var state: OperationState
    public var priority: Int
    public var rawDataPackageID: Int64?
    public var dataTransferPackageID: Int64?
    public var dataTransferID: Int64?
    public var longTermArchiveTransferID: Int64?
    public var stagingJobID: Int64?
    public var physicalCopyID: Int64?
    /// Where the operation writes, when that is not implied by its target (the buffer a package is built in).
    public var targetLocationID: Int64?
    public var sizeHintBytes: Int64
    public var attempts: Int
    public var maxAttempts: Int
    public var nextAttemptAt: Date
    public var lastError: String?
    public var errorClass: String?
    public var batchJobID: Int64?
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var bytesProcessed: Int64?
    public var logPath: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
}

public struct BatchJob: Codable, Sendable, Equatable {
    public var id: Int64
    public var scheduler: BatchSchedulerKind
    public var cluster: String
    public var submitToken: UUID
    public var schedulerJobID: String?
    public var queue: String
    public var dataLocationID: Int64?
    public var scriptPath: String
    public var stdoutPath: String?
    public var stderrPath: String?
    public var state: BatchJobState
    public var reason: String?
    public var exitCode: Int?
    public var exitSignal: Int?
    public var node: String?
    public var operationType: OperationType?
    public var submitAttempts: Int
    public var createdAt: Date
    public var submittedAt: Date?
    public var startedAt: Date?
    public var endedAt: Date?
    /// When the scheduler last reported the job.
    public var lastSeenAt: Date?

    /// The job as the scheduler knows it (nil before sbatch answered).
    public var submitted: (jobID: String, cluster: String?)? {
        schedulerJobID.map { ($0, cluster.isEmpty ? nil : cluster) }
    }
}

/// One state change of a batch job.
public struct BatchJobEvent: Codable, Sendable, Equatable {
    public var at: Date
    public var state: BatchJobState
    public var reason: String?
}

public struct ServiceHeartbeat: Codable, Sendable, Equatable {
    public var serviceName: String
    public var instance: String
    public var host: String
    public var pid: Int
    public var status: ServiceStatus
    public var isLeader: Bool
    public var version: String?
    public var startedAt: Date
    public var lastHeartbeatAt: Date
    public var stoppedAt: Date?
}
