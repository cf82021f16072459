import Foundation
import Postgres

/// What refers to a location: live copies at it, and any other record (files, packages, transfers,
/// operations, jobs, routes) that would lose its meaning if the location disappeared.
public struct LocationUsage: Sendable, Equatable {
    public var liveCopies: Int
    public var references: Int
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

    /// The location's profiles keyed by operation (nil = the location default).
    public func submissionProfiles(locationID: Int64) async throws -> [OperationType?: BatchProfile] {
        var profiles: [OperationType?: BatchProfile] = [:]
        for row in try await connection.query("SELECT \(Self.profileColumns) FROM submission_profile WHERE data_location_id = \(locationID)") {
            profiles[try row.decode(OperationType?.self, column: "operation_type")] = try row.decode(BatchProfile.self)
        }
        return profiles
    }

    /// Every profile of every location, for queue discovery in one query.
    public func allSubmissionProfiles() async throws -> [(locationID: Int64, operation: OperationType?, profile: BatchProfile)] {
        try await connection.query("SELECT \(Self.profileColumns) FROM submission_profile").map { row in
            (try row.decode(Int64.self, column: "data_location_id"), try row.decode(OperationType?.self, column: "operation_type"),
             try row.decode(BatchProfile.self))
        }
    }

    public func upsertSubmissionProfile(locationID: Int64, operation: OperationType?, profile: BatchProfile) async throws {
        let conflict: PostgresQuery = operation == nil
            ? "(data_location_id) WHERE operation_type IS NULL"
            : "(data_location_id, operation_type) WHERE operation_type IS NOT NULL"
        try await connection.execute("""
            INSERT INTO submission_profile (\(Self.profileColumns))
            VALUES (\(locationID), \(operation), \(profile.partition), \(profile.account), \(profile.qos),
                    \(profile.timeLimitMinutes), \(profile.cpus), \(profile.memoryMB), \(profile.constraint), \(profile.nodelist),
                    \(profile.cluster), \(profile.extra), \(profile.maxQueuedJobs), \(profile.maxOperationsPerJob), \(profile.maxBytesPerJob))
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
