import Foundation
import Postgres

extension OpsDB {
    static let bundleColumns: PostgresQuery = """
        id, name, origin_location_id, status, relative_path, size_bytes, checksum, checksum_algorithm, created_at, updated_at
        """
    static let transferColumns: PostgresQuery = """
        id, data_transfer_package_id, origin_location_id, destination_location_id, route_id, method, status, unpack_status,
        attempts, unpack_attempts, bytes_transferred, error_message, unpack_error_message, started_at, finished_at, unpacked_at
        """
    static let archiveTransferColumns: PostgresQuery = """
        id, raw_data_package_id, origin_location_id, destination_location_id, status, attempts, requires_intervention,
        error_message, started_at, finished_at
        """
    static let stagingJobColumns: PostgresQuery = """
        id, staging_request_id, destination_location_id, origin_location_id, target_directory, status, attempts, error_message
        """

    // MARK: Data transfer packages (bundles)

    public func dataTransferPackage(id: Int64) async throws -> DataTransferPackage? {
        try await optional(DataTransferPackage.self, "SELECT \(Self.bundleColumns) FROM data_transfer_package WHERE id = \(id)")
    }

    /// A new bundle of completed raw data packages kept at `originLocationID` (status PENDING).
    public func createDataTransferPackage(name: String, originLocationID: Int64, relativePath: String, packageIDs: [Int64]) async throws -> DataTransferPackage {
        try await transaction { db in
            let bundle = try await db.one(DataTransferPackage.self, """
                INSERT INTO data_transfer_package (name, origin_location_id, relative_path)
                VALUES (\(name), \(originLocationID), \(relativePath))
                RETURNING \(Self.bundleColumns)
                """)
            try await db.connection.execute("""
                UPDATE raw_data_package SET data_transfer_package_id = \(bundle.id), updated_at = now()
                WHERE id = ANY(\(packageIDs)) AND data_transfer_package_id IS NULL
                """)
            return bundle
        }
    }

    /// The raw data packages of a bundle, in archive order.
    public func rawDataPackages(bundleID: Int64) async throws -> [RawDataPackage] {
        try await all(RawDataPackage.self, """
            SELECT \(Self.rawDataPackageColumns) FROM raw_data_package WHERE data_transfer_package_id = \(bundleID) ORDER BY relative_path
            """)
    }

    public func recordDataTransferPackageArchive(_ id: Int64, sizeBytes: Int64, checksum: String) async throws {
        try await connection.execute("""
            UPDATE data_transfer_package SET size_bytes = \(sizeBytes), checksum = \(checksum), status = 'COMPLETED', updated_at = now()
            WHERE id = \(id)
            """)
    }

    // MARK: Transfers

    public func dataTransfer(id: Int64) async throws -> DataTransfer? {
        try await optional(DataTransfer.self, "SELECT \(Self.transferColumns) FROM data_transfer WHERE id = \(id)")
    }

    public func createDataTransfer(bundleID: Int64, originLocationID: Int64, destinationLocationID: Int64, routeID: Int64?,
                                   method: TransferMethod) async throws -> DataTransfer {
        try await one(DataTransfer.self, """
            INSERT INTO data_transfer (data_transfer_package_id, origin_location_id, destination_location_id, route_id, method)
            VALUES (\(bundleID), \(originLocationID), \(destinationLocationID), \(routeID), \(method))
            RETURNING \(Self.transferColumns)
            """)
    }

    public func recordTransferCompleted(_ id: Int64, bytes: Int64) async throws {
        try await connection.execute("""
            UPDATE data_transfer SET status = 'COMPLETED', bytes_transferred = \(bytes), error_message = NULL, finished_at = now(), updated_at = now()
            WHERE id = \(id)
            """)
    }

    public func recordUnpackCompleted(_ id: Int64) async throws {
        try await connection.execute("""
            UPDATE data_transfer SET unpack_status = 'COMPLETED', unpack_error_message = NULL, unpacked_at = now(), updated_at = now()
            WHERE id = \(id)
            """)
    }

    public func longTermArchiveTransfer(id: Int64) async throws -> LongTermArchiveTransfer? {
        try await optional(LongTermArchiveTransfer.self, "SELECT \(Self.archiveTransferColumns) FROM long_term_archive_transfer WHERE id = \(id)")
    }

    public func createLongTermArchiveTransfer(packageID: Int64, originLocationID: Int64, destinationLocationID: Int64) async throws -> LongTermArchiveTransfer {
        try await one(LongTermArchiveTransfer.self, """
            INSERT INTO long_term_archive_transfer (raw_data_package_id, origin_location_id, destination_location_id)
            VALUES (\(packageID), \(originLocationID), \(destinationLocationID))
            RETURNING \(Self.archiveTransferColumns)
            """)
    }

    public func recordArchiveTransferCompleted(_ id: Int64) async throws {
        try await connection.execute("""
            UPDATE long_term_archive_transfer SET status = 'COMPLETED', error_message = NULL, finished_at = now(), updated_at = now()
            WHERE id = \(id)
            """)
    }

    // MARK: Staging

    public func stagingJob(id: Int64) async throws -> StagingJob? {
        try await optional(StagingJob.self, "SELECT \(Self.stagingJobColumns) FROM staging_job WHERE id = \(id)")
    }

    public func createStagingJob(requestID: Int64?, destinationLocationID: Int64, originLocationID: Int64?, targetDirectory: String,
                                 packageIDs: [Int64]) async throws -> StagingJob {
        try await transaction { db in
            let job = try await db.one(StagingJob.self, """
                INSERT INTO staging_job (staging_request_id, destination_location_id, origin_location_id, target_directory)
                VALUES (\(requestID), \(destinationLocationID), \(originLocationID), \(targetDirectory))
                RETURNING \(Self.stagingJobColumns)
                """)
            try await db.connection.execute("""
                INSERT INTO staging_job_package (staging_job_id, raw_data_package_id) SELECT \(job.id), unnest(\(packageIDs)::bigint[])
                """)
            return job
        }
    }

    public func stagingJobPackages(_ jobID: Int64) async throws -> [RawDataPackage] {
        try await all(RawDataPackage.self, """
            SELECT \(Self.rawDataPackageColumns) FROM raw_data_package
            WHERE id IN (SELECT raw_data_package_id FROM staging_job_package WHERE staging_job_id = \(jobID))
            ORDER BY relative_path
            """)
    }

    /// Verified live copies of a package in long-term archives, the preferred one first: at the
    /// given location if named, else at the destination's own site, else by priority.
    public func archiveCopies(of packageID: Int64, near destinationLocationID: Int64, preferring originID: Int64?) async throws -> [PhysicalCopy] {
        try await all(PhysicalCopy.self, """
            WITH ranked AS (
                SELECT c.id, row_number() OVER (ORDER BY (l.id = \(originID)) IS TRUE DESC,
                    l.site_id = (SELECT site_id FROM data_location WHERE id = \(destinationLocationID)) DESC, l.priority, l.id) AS rank
                FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                WHERE c.raw_data_package_id = \(packageID) AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                  AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.active AND c.staging_job_id IS NULL
            )
            SELECT \(Self.copyColumns) FROM physical_copy JOIN ranked USING (id) ORDER BY rank
            """)
    }

    public func recordStagingCompleted(_ id: Int64) async throws {
        try await connection.execute("""
            UPDATE staging_job SET status = 'COMPLETED', error_message = NULL, finished_at = now(), updated_at = now() WHERE id = \(id)
            """)
    }

    // MARK: Attempts of the object an operation works on

    /// The object the operation works on is now being worked on (one more attempt).
    public func markTargetStarted(_ operation: OperationRecord) async throws {
        switch operation.operationType {
        case .rawDataPackageCreation:
            if let id = operation.rawDataPackageID { try await setRawDataPackageStatus(id, .inProgress) }
        case .dataTransferPackageCreation:
            if let id = operation.dataTransferPackageID {
                try await connection.execute("UPDATE data_transfer_package SET status = 'IN_PROGRESS', updated_at = now() WHERE id = \(id) AND status <> 'COMPLETED'")
            }
        case .dataTransfer:
            if let id = operation.dataTransferID {
                try await connection.execute("""
                    UPDATE data_transfer SET status = 'IN_PROGRESS', attempts = attempts + 1, started_at = now(), updated_at = now()
                    WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .dataTransferUnpacking:
            if let id = operation.dataTransferID {
                try await connection.execute("""
                    UPDATE data_transfer SET unpack_status = 'IN_PROGRESS', unpack_attempts = unpack_attempts + 1, updated_at = now()
                    WHERE id = \(id) AND status = 'COMPLETED' AND unpack_status <> 'COMPLETED'
                    """)
            }
        case .longTermArchiveTransfer:
            if let id = operation.longTermArchiveTransferID {
                try await connection.execute("""
                    UPDATE long_term_archive_transfer SET status = 'IN_PROGRESS', attempts = attempts + 1, started_at = now(), updated_at = now()
                    WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .staging:
            if let id = operation.stagingJobID {
                try await connection.execute("""
                    UPDATE staging_job SET status = 'IN_PROGRESS', attempts = attempts + 1, started_at = now(), updated_at = now()
                    WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .deletion, .monitoring:
            break
        }
    }

    /// The attempt failed: the object says so, with the message. Unpacking failures are kept
    /// apart from transfer failures (`unpack_status`, `unpack_error_message`).
    public func markTargetFailed(_ operation: OperationRecord, message: String) async throws {
        switch operation.operationType {
        case .rawDataPackageCreation:
            if let id = operation.rawDataPackageID {
                try await connection.execute("UPDATE raw_data_package SET status = 'FAILED', updated_at = now() WHERE id = \(id) AND status <> 'COMPLETED'")
            }
        case .dataTransferPackageCreation:
            if let id = operation.dataTransferPackageID {
                try await connection.execute("UPDATE data_transfer_package SET status = 'FAILED', updated_at = now() WHERE id = \(id) AND status <> 'COMPLETED'")
            }
        case .dataTransfer:
            if let id = operation.dataTransferID {
                try await connection.execute("""
                    UPDATE data_transfer SET status = 'FAILED', error_message = \(message), updated_at = now() WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .dataTransferUnpacking:
            if let id = operation.dataTransferID {
                try await connection.execute("""
                    UPDATE data_transfer SET unpack_status = 'FAILED', unpack_error_message = \(message), updated_at = now()
                    WHERE id = \(id) AND status = 'COMPLETED' AND unpack_status <> 'COMPLETED'
                    """)
            }
        case .longTermArchiveTransfer:
            if let id = operation.longTermArchiveTransferID {
                try await connection.execute("""
                    UPDATE long_term_archive_transfer SET status = 'FAILED', error_message = \(message), updated_at = now()
                    WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .staging:
            if let id = operation.stagingJobID {
                try await connection.execute("""
                    UPDATE staging_job SET status = 'FAILED', error_message = \(message), updated_at = now() WHERE id = \(id) AND status <> 'COMPLETED'
                    """)
            }
        case .deletion, .monitoring:
            break
        }
    }

    // MARK: Monitoring

    public func locationStatus(_ locationID: Int64) async throws -> LocationStatus? {
        try await optional(LocationStatus.self, """
            SELECT data_location_id, measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message
            FROM data_location_status WHERE data_location_id = \(locationID)
            """)
    }

    // MARK: Deletion

    /// Locks the copy and says why it may not be deleted now (nil: it may). Call inside the
    /// transaction that then deletes it and marks it DELETED, so the answer still holds.
    ///
    /// A copy in a SOURCE or BUFFER location may go only when every raw data package it holds has
    /// verified long-term archive copies at the required number of distinct sites (the topology's
    /// `required_archive_sites`, else every site that has an active long-term archive), and
    /// no unfinished operation still reads it there. Long-term archive copies are never deleted
    /// here. Staged (PROCESSING) copies may go once their request is no longer being served.
    public func deletionBlocker(copyID: Int64, exceptOperation operationID: Int64) async throws -> String? {
        guard let copy = try await optional(PhysicalCopy.self, "SELECT \(Self.copyColumns) FROM physical_copy WHERE id = \(copyID) FOR UPDATE") else {
            return "physical copy \(copyID) does not exist"
        }
        guard let location = try await location(id: copy.dataLocationID) else { return "its location no longer exists" }
        switch location.locationType {
        case .longTermArchive:
            return "copies in the long-term archive '\(location.name)' are never deleted by the pipeline"
        case .processing:
            let serving: String? = try await connection.query("""
                SELECT r.status::text AS status FROM staging_job j JOIN staging_request r ON r.id = j.staging_request_id
                WHERE j.id = \(copy.stagingJobID) AND r.status IN ('SUBMITTED', 'ACCEPTED', 'STAGING', 'READY')
                """).first?["status"]
            return serving.map { "the staging request it was staged for is still \($0)" }
        case .source, .buffer:
            break
        }
        let packages: PostgresQuery
        switch copy.kind {
        case .rawDataFile:
            packages = "SELECT raw_data_package_id AS id FROM raw_data_file WHERE id = \(copy.rawDataFileID)"
        case .rawDataPackage:
            packages = "SELECT \(copy.rawDataPackageID)::bigint AS id"
        case .dataTransferPackage:
            packages = "SELECT id FROM raw_data_package WHERE data_transfer_package_id = \(copy.dataTransferPackageID)"
        }
        let unarchived = try await connection.query("""
            WITH required AS (
                SELECT DISTINCT site_id FROM data_location WHERE location_type = 'LONG_TERM_ARCHIVE' AND active
            ), packages AS (\(packages))
            SELECT coalesce(p.name, 'no package') AS name,
                   coalesce((SELECT required_archive_sites FROM archive_policy), (SELECT count(*) FROM required)) AS required,
                   (SELECT count(DISTINCT l.site_id) FROM physical_copy c JOIN data_location l ON l.id = c.data_location_id
                    WHERE c.raw_data_package_id = p.id AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
                      AND l.location_type = 'LONG_TERM_ARCHIVE' AND l.site_id IN (SELECT site_id FROM required)) AS archived
            FROM packages LEFT JOIN raw_data_package p ON p.id = packages.id
            """)
        if unarchived.isEmpty { return "it holds no raw data package" }
        for row in unarchived {
            let name: String = try row["name"]
            let required: Int = try row["required"]
            let archived: Int = try row["archived"]
            if required == 0 { return "no active long-term archive exists, so nothing can be safely deleted" }
            if archived < required {
                return "package \(name) has verified long-term archive copies at \(archived) of \(required) archive sites"
            }
        }
        let readers = try await connection.query("""
            WITH packages AS (\(packages))
            SELECT o.id, o.operation_type::text AS type FROM operation o
            LEFT JOIN data_transfer t ON t.id = o.data_transfer_id
            LEFT JOIN long_term_archive_transfer a ON a.id = o.long_term_archive_transfer_id
            WHERE o.id <> \(operationID) AND o.state IN ('pending', 'submitted', 'running')
              AND ((o.operation_type = 'DATA_TRANSFER' AND t.origin_location_id = \(copy.dataLocationID)
                    AND t.data_transfer_package_id = \(copy.dataTransferPackageID))
                OR (o.operation_type = 'DATA_TRANSFER_UNPACKING' AND t.destination_location_id = \(copy.dataLocationID)
                    AND t.data_transfer_package_id = \(copy.dataTransferPackageID))
                OR (o.operation_type = 'LONG_TERM_ARCHIVE_TRANSFER' AND a.origin_location_id = \(copy.dataLocationID)
                    AND a.raw_data_package_id IN (SELECT id FROM packages))
                OR (o.operation_type = 'DATA_TRANSFER_PACKAGE_CREATION' AND o.data_location_id = \(copy.dataLocationID)
                    AND o.data_transfer_package_id IN (SELECT data_transfer_package_id FROM raw_data_package WHERE id IN (SELECT id FROM packages)))
                OR (o.operation_type = 'RAW_DATA_PACKAGE_CREATION' AND o.raw_data_package_id IN (SELECT id FROM packages)))
            LIMIT 1
            """)
        if let reader = readers.first {
            let id: Int64 = try reader["id"]
            let type: String = try reader["type"]
            return "operation \(id) (\(type)) still reads it"
        }
        return nil
    }
}

