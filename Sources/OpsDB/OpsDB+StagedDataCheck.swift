import Foundation
import Postgres

/// A file staged for a READY request, as the staged-data check looks for it.
public struct StagedCopy: Codable, Sendable, Equatable {
    public var id: Int64
    public var relativePath: String
    public var sizeBytes: Int64?
    public var stagingJobID: Int64
}

extension OpsDB {
    /// Whether a PROCESSING location holds data of READY requests (what its check looks at).
    public func holdsReadyStagedData(locationID: Int64) async throws -> Bool {
        try await connection.query("""
            SELECT EXISTS (SELECT 1 FROM staging_request r JOIN staging_job j ON j.staging_request_id = r.id
                           WHERE r.status = 'READY' AND j.destination_location_id = \(locationID) AND j.cleaned_at IS NULL) AS held
            """)[0]["held"]
    }

    /// Files of READY requests staged at the location, in pages by copy id.
    public func readyStagedCopies(locationID: Int64, afterID: Int64, limit: Int) async throws -> [StagedCopy] {
        try await all(StagedCopy.self, """
            SELECT c.id, c.relative_path, c.size_bytes, c.staging_job_id FROM physical_copy c
            JOIN staging_job j ON j.id = c.staging_job_id JOIN staging_request r ON r.id = j.staging_request_id
            WHERE c.data_location_id = \(locationID) AND c.status = 'PRESENT' AND c.id > \(afterID) AND r.status = 'READY'
            ORDER BY c.id LIMIT \(limit)
            """)
    }

    /// Ends a staged-data check: the files found gone are findings, marked MISSING, and every
    /// READY request they belong to says so in its `reason` (`ccat stage status` shows it).
    public func finishStagedDataCheck(_ runID: Int64, checked: Int64, gone: [(copy: StagedCopy, detail: String)]) async throws {
        for (copy, detail) in gone {
            try await connection.execute("""
                INSERT INTO integrity_finding (integrity_run_id, kind, physical_copy_id, relative_path, expected_size_bytes, detail)
                VALUES (\(runID), 'LOST', \(copy.id), \(copy.relativePath), \(copy.sizeBytes), \(detail))
                """)
        }
        try await markDamagedCopies(runID: runID)
        try await connection.execute("""
            UPDATE staging_request r SET updated_at = now(),
                reason = 'staged data vanished: ' || lost.n || ' of ' || total.n || ' staged files are gone from '
                         || lost.directory || ' (found ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC; a scratch purge, '
                         || 'or removed by hand); release this request and ask for the data again'
            FROM (SELECT j.staging_request_id AS request, count(*) AS n, min(j.target_directory) AS directory
                  FROM integrity_finding f JOIN physical_copy c ON c.id = f.physical_copy_id JOIN staging_job j ON j.id = c.staging_job_id
                  WHERE f.integrity_run_id = \(runID) GROUP BY j.staging_request_id) lost,
                 LATERAL (SELECT count(*) AS n FROM physical_copy c JOIN staging_job j ON j.id = c.staging_job_id
                          WHERE j.staging_request_id = lost.request AND c.status <> 'DELETED') total
            WHERE r.id = lost.request AND r.status = 'READY'
            """)
        try await connection.execute("""
            UPDATE integrity_run SET state = 'COMPLETED', finished_at = now(), checked_copies = \(checked), listed_objects = \(checked),
                lost_count = \(Int64(gone.count)) WHERE id = \(runID)
            """)
    }
}
