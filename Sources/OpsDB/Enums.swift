import Postgres

// The database's enum types, one Swift enum each; raw values are the database labels.

/// The role of a location in the pipeline.
public enum LocationType: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case source = "SOURCE"
    case buffer = "BUFFER"
    case longTermArchive = "LONG_TERM_ARCHIVE"
    case processing = "PROCESSING"
}

public enum StorageType: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case disk = "DISK"
    case s3 = "S3"
    case tape = "TAPE"
}

/// The reference system's `Status` of packages and transfers.
public enum Status: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case pending = "PENDING"
    case scheduled = "SCHEDULED"
    case inProgress = "IN_PROGRESS"
    case completed = "COMPLETED"
    case failed = "FAILED"
}

public enum PhysicalCopyStatus: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case present = "PRESENT"
    case deletionScheduled = "DELETION_SCHEDULED"
    case deleted = "DELETED"
    case corrupted = "CORRUPTED"
    case missing = "MISSING"
}

public enum PhysicalCopyKind: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case rawDataFile = "RAW_DATA_FILE"
    case rawDataPackage = "RAW_DATA_PACKAGE"
    case dataTransferPackage = "DATA_TRANSFER_PACKAGE"
}

public enum RouteType: String, PostgresCodable, Codable, CaseIterable, Sendable {
    /// Skip the destination buffer.
    case direct = "DIRECT"
    /// Route through an intermediate site.
    case relay = "RELAY"
    /// A location-to-location override.
    case custom = "CUSTOM"
}

public enum TransferMethod: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case copy = "COPY"
    case rsync = "RSYNC"
    case bbcp = "BBCP"
    case s3 = "S3"
}

/// The eight operations of the reference system, and three that keep long-term archives whole
/// (migration 0013): re-reading copies, comparing storage with the catalogue, and repairing.
public enum OperationType: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case rawDataPackageCreation = "RAW_DATA_PACKAGE_CREATION"
    case dataTransferPackageCreation = "DATA_TRANSFER_PACKAGE_CREATION"
    case dataTransfer = "DATA_TRANSFER"
    case dataTransferUnpacking = "DATA_TRANSFER_UNPACKING"
    case longTermArchiveTransfer = "LONG_TERM_ARCHIVE_TRANSFER"
    case staging = "STAGING"
    case deletion = "DELETION"
    case monitoring = "MONITORING"
    case fixityCheck = "FIXITY_CHECK"
    case consistencyAudit = "CONSISTENCY_AUDIT"
    case archiveRepair = "ARCHIVE_REPAIR"

    /// The lower-case form used in queue names, e.g. `data_transfer`.
    public var queueSuffix: String { rawValue.lowercased() }
}

/// Execution state of an `operation` row.
public enum OperationState: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case pending, submitted, running, succeeded, failed, intervention, cancelled

    /// States in which the operation still holds its target (at most one such operation per target).
    public var isLive: Bool { self != .succeeded && self != .cancelled }
}

public enum BatchSchedulerKind: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case slurm, local
}

/// Batch job states in Slurm's vocabulary (the local scheduler reports the same ones).
public enum BatchJobState: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case prepared = "PREPARED"
    case submitting = "SUBMITTING"
    case pending = "PENDING"
    case running = "RUNNING"
    case completing = "COMPLETING"
    case suspended = "SUSPENDED"
    case requeued = "REQUEUED"
    case completed = "COMPLETED"
    case failed = "FAILED"
    case cancelled = "CANCELLED"
    case timeout = "TIMEOUT"
    case nodeFail = "NODE_FAIL"
    case outOfMemory = "OUT_OF_MEMORY"
    case preempted = "PREEMPTED"
    case bootFail = "BOOT_FAIL"
    case deadline = "DEADLINE"
    /// The scheduler no longer knows the job and no terminal state was ever seen.
    case lost = "LOST"

    public var isTerminal: Bool {
        switch self {
        case .prepared, .submitting, .pending, .running, .completing, .suspended, .requeued: return false
        default: return true
        }
    }
}

public enum ServiceStatus: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case starting = "STARTING"
    case running = "RUNNING"
    case stopping = "STOPPING"
    case stopped = "STOPPED"
}

/// Where a `--slurm-dependency` request's sentinel job is (`staging_request.sentinel_state`).
public enum SentinelState: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case held = "HELD"
    case released = "RELEASED"
    case cancelled = "CANCELLED"
}

public enum StagingRequestStatus: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case submitted = "SUBMITTED"
    case accepted = "ACCEPTED"
    case rejected = "REJECTED"
    case staging = "STAGING"
    case ready = "READY"
    case failed = "FAILED"
    case cancelled = "CANCELLED"
    case released = "RELEASED"
    case expired = "EXPIRED"
}

/// A fixity pass or a consistency audit (`integrity_run.kind`).
public enum IntegrityRunKind: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case fixity = "FIXITY"
    case audit = "AUDIT"
}

/// RUNNING -> COMPLETED | SUSPECT | FAILED; SUSPECT -> CONFIRMED by an admin.
public enum IntegrityRunState: String, PostgresCodable, Codable, CaseIterable, Sendable {
    case running = "RUNNING"
    case completed = "COMPLETED"
    /// The safety brake tripped: too much looked bad at once, so nothing was marked or repaired.
    case suspect = "SUSPECT"
    case confirmed = "CONFIRMED"
    case failed = "FAILED"
}

public enum IntegrityFindingKind: String, PostgresCodable, Codable, CaseIterable, Sendable {
    /// The catalogue has the copy; the storage does not (or with another size).
    case lost = "LOST"
    /// The copy's bytes no longer have its SHA-256.
    case corrupted = "CORRUPTED"
    /// The storage has an object the catalogue does not know.
    case dark = "DARK"
    /// A temporary file of an interrupted write, older than a day.
    case staleTemporary = "STALE_TEMPORARY"
}
