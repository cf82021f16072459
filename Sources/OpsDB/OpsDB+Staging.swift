import Foundation
import Postgres

extension OpsDB {
    static let stagingRequestColumns: PostgresQuery = """
        id, public_id, selection::text AS selection, destination_location_id, uid, gid, username, submitted_by::text AS submitted_by,
        status, reason, package_count, total_bytes, submitted_at, updated_at, ready_at, released_at, expires_at,
        slurm_job_id, keep_after_job, slurm_dependency, sentinel_job_id, sentinel_state
        """

    // The daemon's side of staging (what scientists do through `ccat stage` is in
    // OpsDB+StagingRequests.swift).

    /// The next submitted request after `afterID` to decode, locked for this transaction.
    public func nextStagingRequestToDecode(after afterID: Int64) async throws -> (request: StagingRequest, credential: String, credentialDigest: String)? {
        try await connection.query("""
            SELECT \(Self.stagingRequestColumns), credential, credential_digest FROM staging_request
            WHERE status = 'SUBMITTED' AND id > \(afterID) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
            """).first.map { (try $0.decode(StagingRequest.self), try $0["credential"], try $0["credential_digest"]) }
    }

    /// Open requests in one of `statuses`, oldest first.
    public func stagingRequests(in statuses: [StagingRequestStatus], limit: Int) async throws -> [StagingRequest] {
        try await all(StagingRequest.self, """
            SELECT \(Self.stagingRequestColumns) FROM staging_request
            WHERE status = ANY(\(statuses.map(\.rawValue))::staging_request_status[]) ORDER BY id LIMIT \(limit)
            """)
    }

    /// An earlier request that carried the same credential.
    public func requestWithSameCredential(digest: String, before id: Int64) async throws -> Int64? {
        try await connection.query("""
            SELECT id FROM staging_request
            WHERE credential_digest = \(digest) AND id < \(id)
              AND credential = (SELECT credential FROM staging_request WHERE id = \(id))
            ORDER BY id LIMIT 1
            """).first?["id"]
    }

    /// True when the row's selection and destination are the ones the credential signed.
    /// True when the row's selection, destination and Slurm job are the ones the credential signed.
    public func stagingRequestMatches(_ id: Int64, selection: StagingSelection, destinationLocationID: Int64?, slurmJobID: Int64?,
                                      keepAfterJob: Bool, slurmDependency: Bool) async throws -> Bool {
        try await connection.query("""
            SELECT selection = \(try selection.json())::jsonb AND destination_location_id IS NOT DISTINCT FROM \(destinationLocationID)
                   AND slurm_job_id IS NOT DISTINCT FROM \(slurmJobID) AND keep_after_job = \(keepAfterJob)
                   AND slurm_dependency = \(slurmDependency) AS same
            FROM staging_request WHERE id = \(id)
            """).first?["same"] ?? false
    }

    public func rejectStagingRequest(_ id: Int64, reason: String, uid: UInt32? = nil, gid: UInt32? = nil, username: String? = nil) async throws {
        try await connection.execute("""
            UPDATE staging_request SET status = 'REJECTED', reason = \(reason), uid = \(uid.map { Int($0) }), gid = \(gid.map { Int($0) }),
                username = \(username), updated_at = now()
            WHERE id = \(id)
            """)
    }

    public func acceptStagingRequest(_ id: Int64, uid: UInt32, gid: UInt32, username: String, packageCount: Int, totalBytes: Int64,
                                     reason: String?) async throws {
        try await connection.execute("""
            UPDATE staging_request SET status = 'ACCEPTED', uid = \(Int(uid)), gid = \(Int(gid)), username = \(username),
                package_count = \(packageCount), total_bytes = \(totalBytes), reason = \(reason), updated_at = now()
            WHERE id = \(id) AND status = 'SUBMITTED'
            """)
    }

    /// Says why an open request waits, when that changed.
    public func setStagingRequestReason(_ id: Int64, _ reason: String?, packageCount: Int? = nil, totalBytes: Int64? = nil) async throws {
        try await connection.execute("""
            UPDATE staging_request SET reason = \(reason), package_count = coalesce(\(packageCount), package_count),
                total_bytes = coalesce(\(totalBytes), total_bytes), updated_at = now()
            WHERE id = \(id) AND (reason IS DISTINCT FROM \(reason) OR package_count IS DISTINCT FROM coalesce(\(packageCount), package_count)
                                  OR total_bytes IS DISTINCT FROM coalesce(\(totalBytes), total_bytes))
            """)
    }

    public func processingPolicy(locationID: Int64) async throws -> (groups: [String], quotaBytesPerUser: Int64?) {
        guard let row = try await connection.query("""
            SELECT allowed_groups, quota_bytes_per_user FROM processing_policy WHERE data_location_id = \(locationID)
            """).first else { return ([], nil) }
        return (try row["allowed_groups"], try row["quota_bytes_per_user"])
    }

    public func setProcessingPolicy(locationID: Int64, groups: [String], quotaBytesPerUser: Int64?) async throws {
        try await connection.execute("""
            INSERT INTO processing_policy (data_location_id, allowed_groups, quota_bytes_per_user)
            VALUES (\(locationID), \(groups)::text[], \(quotaBytesPerUser))
            ON CONFLICT (data_location_id) DO UPDATE SET allowed_groups = excluded.allowed_groups,
                quota_bytes_per_user = excluded.quota_bytes_per_user
            """)
    }

    /// Bytes a user's requests hold or are about to hold at a location (quota accounting).
    public func openStagingBytes(username: String, locationID: Int64) async throws -> Int64 {
        try await connection.query("""
            SELECT coalesce(sum(total_bytes), 0)::bigint AS bytes FROM staging_request
            WHERE username = \(username) AND destination_location_id = \(locationID)
              AND status IN ('ACCEPTED', 'STAGING', 'READY', 'FAILED')
            """).first?["bytes"] ?? 0
    }

    /// Creates the request's staging jobs (one per group of packages) and moves it to STAGING, in
    /// one transaction; only if it is still ACCEPTED.
    public func startStaging(_ requestID: Int64, destinationLocationID: Int64, targetDirectory: String,
                             jobs: [(originLocationID: Int64?, packageIDs: [Int64])]) async throws -> Bool {
        try await transaction { db in
            let updated: Int64? = try await db.connection.query("""
                UPDATE staging_request SET status = 'STAGING', reason = NULL, updated_at = now()
                WHERE id = \(requestID) AND status = 'ACCEPTED' RETURNING id
                """).first?["id"]
            guard updated != nil else { return false }
            for job in jobs {
                _ = try await db.createStagingJob(requestID: requestID, destinationLocationID: destinationLocationID,
                                                  originLocationID: job.originLocationID, targetDirectory: targetDirectory,
                                                  packageIDs: job.packageIDs)
            }
            return true
        }
    }

    /// The jobs of a request with the state of their newest STAGING operation.
    public func stagingJobStates(requestID: Int64) async throws -> [(job: StagingJob, operationState: OperationState?, operationID: Int64?)] {
        try await connection.query("""
            SELECT \(Self.stagingJobColumns),
                   (SELECT o.state FROM operation o WHERE o.staging_job_id = j.id AND o.operation_type = 'STAGING' ORDER BY o.id DESC LIMIT 1) AS operation_state,
                   (SELECT o.id FROM operation o WHERE o.staging_job_id = j.id AND o.operation_type = 'STAGING' ORDER BY o.id DESC LIMIT 1) AS operation_id
            FROM staging_job j WHERE j.staging_request_id = \(requestID) ORDER BY j.id
            """).map { (try $0.decode(StagingJob.self), try $0["operation_state"], try $0["operation_id"]) }
    }

    /// Moves a request on, only if it is still `from` (a scientist may have cancelled or
    /// released it meanwhile); true if it moved.
    @discardableResult
    public func markStagingRequest(_ id: Int64, from: StagingRequestStatus, to status: StagingRequestStatus, reason: String?,
                                   keepSeconds: Int64?) async throws -> Bool {
        try await connection.execute("""
            UPDATE staging_request SET status = \(status), reason = \(reason), updated_at = now(),
                ready_at = CASE WHEN \(status) = 'READY' THEN now() ELSE ready_at END,
                expires_at = CASE WHEN \(keepSeconds)::bigint IS NULL THEN expires_at ELSE now() + \(keepSeconds) * interval '1 second' END
            WHERE id = \(id) AND status = \(from)
            """) == 1
    }

    /// READY and FAILED requests whose time ran out become EXPIRED; returns how many.
    public func expireStagingRequests() async throws -> Int {
        try await connection.query("""
            UPDATE staging_request SET status = 'EXPIRED', updated_at = now(),
                reason = coalesce(reason || '; ', '') || 'expired at ' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')
            WHERE status IN ('READY', 'FAILED') AND expires_at <= now() RETURNING id
            """).count
    }

    /// Staging jobs of ended requests whose directory is not yet removed, with their PROCESSING
    /// location: only once no job of the request is being staged (they share its directory), and
    /// without a DELETION already under way.
    public func stagingJobsToClean(limit: Int) async throws -> [(jobID: Int64, locationID: Int64)] {
        try await connection.query("""
            SELECT j.id, j.destination_location_id FROM staging_job j JOIN staging_request r ON r.id = j.staging_request_id
            WHERE r.status IN ('CANCELLED', 'RELEASED', 'EXPIRED') AND j.cleaned_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM staging_job sibling JOIN operation o ON o.staging_job_id = sibling.id
                              WHERE sibling.staging_request_id = r.id
                                AND ((o.operation_type = 'STAGING' AND o.state IN ('submitted', 'running'))
                                     OR (o.operation_type = 'DELETION' AND o.state NOT IN ('cancelled', 'succeeded'))))
            ORDER BY j.id LIMIT \(limit)
            """).map { (try $0["id"], try $0["destination_location_id"]) }
    }

    /// Why a staging job must not run now (its request ended, or its directory was removed), or nil.
    public func stagingJobEnded(_ jobID: Int64) async throws -> String? {
        guard let row = try await connection.query("""
            SELECT r.id, r.status::text AS status, j.cleaned_at FROM staging_job j LEFT JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.id = \(jobID)
            """).first else { return "staging job \(jobID) does not exist" }
        let status: String? = try row["status"]
        let cleaned: Date? = try row["cleaned_at"]
        if let status, ["CANCELLED", "RELEASED", "EXPIRED", "REJECTED"].contains(status) {
            return "its staging request \(try row["id"] as Int64) is \(status)"
        }
        if cleaned != nil { return "its directory was already removed" }
        return nil
    }

    /// A job that finished staging after its request ended gets its directory removed again.
    public func reopenStagingCleanupIfEnded(_ jobID: Int64) async throws {
        try await connection.execute("""
            UPDATE staging_job j SET cleaned_at = NULL, updated_at = now()
            FROM staging_request r WHERE r.id = j.staging_request_id AND j.id = \(jobID)
              AND r.status IN ('CANCELLED', 'RELEASED', 'EXPIRED')
            """)
    }

    /// Live STAGING operations of ended requests that have not started: cancelled, so nothing is
    /// staged for nobody.
    public func cancelStagingForEndedRequests() async throws -> Int {
        try await connection.query("""
            WITH ended AS (
                UPDATE operation o SET state = 'cancelled', finished_at = now(), updated_at = now(),
                    last_error = coalesce(o.last_error || ' | ', '') || 'its staging request ended'
                FROM staging_job j JOIN staging_request r ON r.id = j.staging_request_id
                WHERE o.staging_job_id = j.id AND o.operation_type = 'STAGING' AND o.state IN ('pending', 'failed', 'intervention')
                  AND r.status IN ('CANCELLED', 'RELEASED', 'EXPIRED')
                RETURNING j.id
            )
            UPDATE staging_job SET status = 'FAILED', error_message = 'its staging request ended', updated_at = now()
            WHERE id IN (SELECT id FROM ended) AND status <> 'COMPLETED' RETURNING id
            """).count
    }

    /// The requester of a staging job: whose files they become, under which name.
    public func stagingJobOwner(_ jobID: Int64) async throws -> (uid: UInt32, gid: UInt32, username: String)? {
        guard let row = try await connection.query("""
            SELECT r.uid, r.gid, r.username FROM staging_job j JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.id = \(jobID) AND r.uid IS NOT NULL
            """).first else { return nil }
        let uid: Int = try row["uid"]
        let gid: Int = try row["gid"]
        return (UInt32(uid), UInt32(gid), try row["username"])
    }

    /// Stamps a package as staged, with the archive copy it was read from.
    public func markStagingPackageStaged(jobID: Int64, packageID: Int64, fromCopy copyID: Int64?) async throws {
        try await connection.execute("""
            UPDATE staging_job_package SET staged_at = coalesce(staged_at, now()), staged_from_copy_id = \(copyID)
            WHERE staging_job_id = \(jobID) AND raw_data_package_id = \(packageID)
            """)
    }

    /// The request's directory is gone: the copies of all its jobs (they share it) are DELETED
    /// and the jobs marked cleaned.
    public func recordStagingJobCleaned(_ jobID: Int64) async throws {
        try await transaction { db in
            let jobs: PostgresQuery = """
                SELECT id FROM staging_job WHERE id = \(jobID)
                   OR staging_request_id = (SELECT staging_request_id FROM staging_job WHERE id = \(jobID))
                """
            try await db.connection.execute("""
                UPDATE physical_copy SET status = 'DELETED', deleted_at = now()
                WHERE staging_job_id IN (\(jobs)) AND status <> 'DELETED'
                """)
            try await db.connection.execute("UPDATE staging_job SET cleaned_at = now(), updated_at = now() WHERE id IN (\(jobs))")
        }
    }

    /// Why a staging job's directory may not be removed now (nil: it may).
    public func stagingCleanupBlocker(jobID: Int64) async throws -> String? {
        guard let row = try await connection.query("""
            SELECT r.id, r.status::text AS status FROM staging_job j JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.id = \(jobID) FOR UPDATE OF j
            """).first else { return "staging job \(jobID) belongs to no request" }
        let status: String = try row["status"]
        let request: Int64 = try row["id"]
        if ["CANCELLED", "RELEASED", "EXPIRED"].contains(status) { return nil }
        return "its staging request \(request) is still \(status)"
    }
}

// MARK: Staging jobs

extension OpsDB {
    static let stagingJobColumns: PostgresQuery = """
        id, staging_request_id, destination_location_id, origin_location_id, target_directory, status, attempts, error_message
        """

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

    /// Staging jobs (created from scientists' requests) without a live STAGING operation.
    /// Jobs of requests that ended (cancelled, released, expired) are left alone.
    public func stagingJobsWithoutOperation(limit: Int) async throws -> [Int64] {
        try await connection.query("""
            SELECT j.id FROM staging_job j LEFT JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.status = 'PENDING' AND (r.id IS NULL OR r.status IN ('STAGING', 'FAILED'))
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.staging_job_id = j.id AND o.operation_type = 'STAGING'
                              AND o.state NOT IN ('succeeded', 'cancelled'))
            ORDER BY j.id LIMIT \(limit)
            """).map { try $0["id"] }
    }

    /// Requests whose sentinel job must be submitted (accepted, no sentinel yet), released (READY)
    /// or cancelled (ended otherwise).
    public func requestsWithSentinelWork(limit: Int) async throws -> [StagingRequest] {
        try await all(StagingRequest.self, """
            SELECT \(Self.stagingRequestColumns) FROM staging_request
            WHERE slurm_dependency AND (
                (sentinel_job_id IS NULL AND status IN ('ACCEPTED', 'STAGING', 'READY'))
                OR (sentinel_state = 'HELD' AND status NOT IN ('SUBMITTED', 'ACCEPTED', 'STAGING')))
            ORDER BY id LIMIT \(limit)
            """)
    }

    public func recordSentinel(requestID: Int64, job: Int64?, state: SentinelState) async throws {
        try await connection.execute("""
            UPDATE staging_request SET sentinel_job_id = coalesce(\(job), sentinel_job_id), sentinel_state = \(state.rawValue), updated_at = now()
            WHERE id = \(requestID)
            """)
    }
}
