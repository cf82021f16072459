import Foundation
import Postgres

extension OpsDB {
    // What `ccat stage` does as the scientist: through the views and functions granted to
    // ccat_scientist (the daemon's side of staging is in OpsDB+Staging.swift).

    public func resolveSelection(_ selection: StagingSelection) async throws -> [SelectedPackage] {
        try await all(SelectedPackage.self, "SELECT * FROM ccat_resolve_selection(\(try selection.json())::jsonb)")
    }

    public func unknownNames(in selection: StagingSelection) async throws -> UnknownNames {
        let observations: [String] = try await connection.query("""
            SELECT name FROM unnest(\(selection.observations)::text[]) AS name
            WHERE NOT EXISTS (SELECT 1 FROM staging_observation o WHERE o.obs_id = name) ORDER BY name
            """).map { try $0["name"] }
        let packages: [String] = try await connection.query("""
            SELECT name FROM unnest(\(selection.packages)::text[]) AS name
            WHERE NOT EXISTS (SELECT 1 FROM staging_catalogue c WHERE c.package = name) ORDER BY name
            """).map { try $0["name"] }
        return UnknownNames(observations: observations, packages: packages)
    }

    /// Median seconds from package creation to its first verified archive copy, recently.
    public func archiveLatencySeconds() async throws -> Double? {
        try await connection.query("SELECT ccat_archive_latency() AS seconds").first?["seconds"]
    }

    public func stagingLocations() async throws -> [StagingLocation] {
        try await all(StagingLocation.self, """
            SELECT id, name, site, active, root_path, allowed_groups, quota_bytes_per_user, retention_seconds
            FROM staging_location ORDER BY site, name
            """)
    }

    /// When the staging manager last reported, if it runs (its leader's heartbeat).
    public func stagingServiceHeartbeat() async throws -> (lastSeen: Date, status: String)? {
        guard let row = try await connection.query("""
            SELECT last_heartbeat_at, status FROM staging_service ORDER BY is_leader DESC, last_heartbeat_at DESC LIMIT 1
            """).first else { return nil }
        return (try row["last_heartbeat_at"], try row["status"])
    }

    /// Puts a request in the inbox; the daemon decodes its credential. Returns its id.
    public func submitStagingRequest(credential: String, selection: StagingSelection, destinationLocationID: Int64, slurmJobID: Int64? = nil,
                                     keepAfterJob: Bool = false, slurmDependency: Bool = false) async throws -> Int64 {
        try await connection.query("""
            INSERT INTO staging_request (credential, selection, destination_location_id, slurm_job_id, keep_after_job, slurm_dependency)
            VALUES (\(credential), \(try selection.json())::jsonb, \(destinationLocationID), \(slurmJobID), \(keepAfterJob), \(slurmDependency))
            RETURNING id
            """).first?["id"] ?? 0
    }

    /// The caller's requests for a Slurm job that have not ended, newest first (the burst-buffer
    /// script asks again after a restart of slurmctld). Only the caller's own: rows others inserted
    /// naming the same job never count, whatever the caller may read.
    public func openStagingRequests(slurmJobID: Int64) async throws -> [StagingRequest] {
        try await all(StagingRequest.self, """
            SELECT \(Self.stagingRequestColumns) FROM staging_request
            WHERE slurm_job_id = \(slurmJobID) AND submitted_by = session_user AND status IN ('SUBMITTED', 'ACCEPTED', 'STAGING', 'READY', 'FAILED')
            ORDER BY id DESC
            """)
    }

    /// The caller's newest request for a Slurm job, whatever its state.
    public func latestStagingRequest(slurmJobID: Int64) async throws -> StagingRequest? {
        try await optional(StagingRequest.self, """
            SELECT \(Self.stagingRequestColumns) FROM staging_request WHERE slurm_job_id = \(slurmJobID) AND submitted_by = session_user
            ORDER BY id DESC LIMIT 1
            """)
    }

    /// Holds, until the connection ends, the lock of a Slurm job's request: two asks for the same
    /// job never both insert.
    public func lockSlurmJobRequest(_ slurmJobID: Int64) async throws {
        try await connection.execute("SELECT pg_advisory_lock(7265, hashtext('slurm job ' || \(slurmJobID)::text))")
    }

    /// Requests the caller may see (row-level security limits scientists to their own), newest first.
    public func stagingRequests(id: Int64? = nil, includeEnded: Bool = true, limit: Int = 200) async throws -> [StagingRequest] {
        let ended: [String] = includeEnded ? [] : ["REJECTED", "CANCELLED", "RELEASED", "EXPIRED"]
        return try await all(StagingRequest.self, """
            SELECT \(Self.stagingRequestColumns) FROM staging_request
            WHERE (\(id)::bigint IS NULL OR id = \(id)) AND NOT (status::text = ANY(\(ended)::text[]))
            ORDER BY id DESC LIMIT \(limit)
            """)
    }

    public func stagingProgress(requestIDs: [Int64]) async throws -> [Int64: StagingProgress] {
        let rows = try await all(StagingProgress.self, """
            SELECT * FROM staging_request_progress WHERE staging_request_id = ANY(\(requestIDs)::bigint[])
            """)
        return Dictionary(rows.map { ($0.stagingRequestID, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Cancels or releases a request of the caller (the database checks who may).
    public func endStagingRequest(_ id: Int64, as status: StagingRequestStatus) async throws -> StagingRequestStatus {
        // The target state is spelled out, not bound: the server's message names the request's
        // state, and a bound value echoed in a message is redacted.
        let query: PostgresQuery = status == .released
            ? "SELECT ccat_end_staging_request(\(id), 'RELEASED') AS status"
            : "SELECT ccat_end_staging_request(\(id), 'CANCELLED') AS status"
        return try await connection.query(query).first?["status"] ?? status
    }
}
