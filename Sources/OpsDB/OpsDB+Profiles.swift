import Foundation
import Postgres

/// What refers to a location: live copies at it, and any other record (files, packages, transfers,
/// operations, jobs, routes) that would lose its meaning if the location disappeared.
public struct LocationUsage: Sendable, Equatable {
    public var liveCopies: Int
    public var references: Int
}

/// One `submission_profile` row (the location default when `operationType` is nil).
public struct SubmissionProfileRow: Codable, Sendable, Equatable {
    public var dataLocationID: Int64
    public var operationType: OperationType?
    public var partition: String?
    public var account: String?
    public var qos: String?
    public var timeLimitMinutes: Int?
    public var cpus: Int?
    public var memoryMB: Int?
    public var nodeConstraint: String?
    public var nodelist: String?
    public var cluster: String?
    public var extraDirectives: [String]
    public var maxQueuedJobs: Int?
    public var maxOperationsPerJob: Int?
    public var maxBytesPerJob: Int64?

    public init(dataLocationID: Int64, operationType: OperationType?, partition: String?, account: String?, qos: String?,
                timeLimitMinutes: Int?, cpus: Int?, memoryMB: Int?, nodeConstraint: String?, nodelist: String?,
                cluster: String?, extraDirectives: [String], maxQueuedJobs: Int?, maxOperationsPerJob: Int?, maxBytesPerJob: Int64?) {
        self.dataLocationID = dataLocationID
        self.operationType = operationType
        self.partition = partition
        self.account = account
        self.qos = qos
        self.timeLimitMinutes = timeLimitMinutes
        self.cpus = cpus
        self.memoryMB = memoryMB
        self.nodeConstraint = nodeConstraint
        self.nodelist = nodelist
        self.cluster = cluster
        self.extraDirectives = extraDirectives
        self.maxQueuedJobs = maxQueuedJobs
        self.maxOperationsPerJob = maxOperationsPerJob
        self.maxBytesPerJob = maxBytesPerJob
    }
}

extension OpsDB {
    static let profileColumns: PostgresQuery = """
        data_location_id, operation_type, partition, account, qos, time_limit_minutes, cpus, memory_mb,
        node_constraint, nodelist, cluster, extra_directives, max_queued_jobs, max_operations_per_job, max_bytes_per_job
        """

    public func locationUsage(id: Int64) async throws -> LocationUsage {
        guard let row = try await connection.query("""
            SELECT
              (SELECT count(*) FROM physical_copy WHERE data_location_id = \(id) AND status <> 'DELETED') AS live_copies,
              (SELECT count(*) FROM physical_copy WHERE data_location_id = \(id))
              + (SELECT count(*) FROM raw_data_file WHERE source_location_id = \(id))
              + (SELECT count(*) FROM raw_data_package WHERE source_location_id = \(id))
              + (SELECT count(*) FROM data_transfer_package WHERE origin_location_id = \(id))
              + (SELECT count(*) FROM data_transfer WHERE origin_location_id = \(id) OR destination_location_id = \(id))
              + (SELECT count(*) FROM long_term_archive_transfer WHERE origin_location_id = \(id) OR destination_location_id = \(id))
              + (SELECT count(*) FROM staging_job WHERE origin_location_id = \(id) OR destination_location_id = \(id))
              + (SELECT count(*) FROM staging_request WHERE destination_location_id = \(id))
              + (SELECT count(*) FROM operation WHERE data_location_id = \(id))
              + (SELECT count(*) FROM batch_job WHERE data_location_id = \(id))
              + (SELECT count(*) FROM data_transfer_route WHERE origin_location_id = \(id) OR destination_location_id = \(id)) AS refs
            """).first else {
            throw NotFoundError(entity: "location", key: "\(id)")
        }
        return LocationUsage(liveCopies: try row["live_copies"], references: try row["refs"])
    }

    /// The location's profile rows keyed by operation (nil = the location default).
    public func submissionProfiles(locationID: Int64) async throws -> [OperationType?: SubmissionProfileRow] {
        let rows = try await all(SubmissionProfileRow.self, "SELECT \(Self.profileColumns) FROM submission_profile WHERE data_location_id = \(locationID)")
        return Dictionary(uniqueKeysWithValues: rows.map { ($0.operationType, $0) })
    }

    /// Every profile row of every location, for queue discovery in one query.
    public func allSubmissionProfiles() async throws -> [SubmissionProfileRow] {
        try await all(SubmissionProfileRow.self, "SELECT \(Self.profileColumns) FROM submission_profile")
    }

    public func upsertSubmissionProfile(_ row: SubmissionProfileRow) async throws {
        let conflict: PostgresQuery = row.operationType == nil
            ? "(data_location_id) WHERE operation_type IS NULL"
            : "(data_location_id, operation_type) WHERE operation_type IS NOT NULL"
        try await connection.execute("""
            INSERT INTO submission_profile (\(Self.profileColumns))
            VALUES (\(row.dataLocationID), \(row.operationType), \(row.partition), \(row.account), \(row.qos),
                    \(row.timeLimitMinutes), \(row.cpus), \(row.memoryMB), \(row.nodeConstraint), \(row.nodelist),
                    \(row.cluster), \(row.extraDirectives), \(row.maxQueuedJobs), \(row.maxOperationsPerJob), \(row.maxBytesPerJob))
            ON CONFLICT \(conflict) DO UPDATE SET
                partition = excluded.partition, account = excluded.account, qos = excluded.qos,
                time_limit_minutes = excluded.time_limit_minutes, cpus = excluded.cpus, memory_mb = excluded.memory_mb,
                node_constraint = excluded.node_constraint, nodelist = excluded.nodelist, cluster = excluded.cluster,
                extra_directives = excluded.extra_directives, max_queued_jobs = excluded.max_queued_jobs,
                max_operations_per_job = excluded.max_operations_per_job, max_bytes_per_job = excluded.max_bytes_per_job
            """)
    }

    public func deleteSubmissionProfile(locationID: Int64, operation: OperationType?) async throws {
        try await connection.execute("""
            DELETE FROM submission_profile WHERE data_location_id = \(locationID) AND operation_type IS NOT DISTINCT FROM \(operation)
            """)
    }

    /// Replaces a location's storage (subtype row and storage type) in the caller's transaction.
    public func replaceStorage(locationID: Int64, with storage: LocationStorage) async throws {
        try await connection.execute("DELETE FROM disk_data_location WHERE data_location_id = \(locationID)")
        try await connection.execute("DELETE FROM s3_data_location WHERE data_location_id = \(locationID)")
        try await connection.execute("DELETE FROM tape_data_location WHERE data_location_id = \(locationID)")
        try await connection.execute("UPDATE data_location SET storage_type = \(storage.storageType) WHERE id = \(locationID)")
        try await insertStorage(locationID: locationID, storage)
    }

    func insertStorage(locationID: Int64, _ storage: LocationStorage) async throws {
        switch storage {
        case .disk(let rootPath):
            try await connection.execute("INSERT INTO disk_data_location (data_location_id, root_path) VALUES (\(locationID), \(rootPath))")
        case .s3(let endpoint, let bucket, let region, let prefix, let credentials, let pathStyle):
            try await connection.execute("""
                INSERT INTO s3_data_location (data_location_id, endpoint_url, bucket, region, prefix, credentials_source, path_style)
                VALUES (\(locationID), \(endpoint), \(bucket), \(region), \(prefix), \(credentials), \(pathStyle))
                """)
        case .tape(let library, let pool):
            try await connection.execute("INSERT INTO tape_data_location (data_location_id, library, pool) VALUES (\(locationID), \(library), \(pool))")
        }
    }
}
