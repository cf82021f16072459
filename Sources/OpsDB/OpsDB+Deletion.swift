import Foundation
import Postgres

// Deletion: the copies that may go, and (below) what keeps one.

extension OpsDB {
    /// Present copies at SOURCE and BUFFER locations after `afterID` (a cursor, so every cycle
    /// moves on through the table), older than their location's retention, with no deletion
    /// operation. The caller checks each with `deletionBlocker` before scheduling it.
    public func deletionCandidates(afterID: Int64, defaultRetentionSeconds: Double, limit: Int) async throws -> [(copyID: Int64, locationID: Int64)] {
        let temporary = try await locationIDs(types: [.source, .buffer])
        return try await connection.query("""
            SELECT c.id, c.data_location_id FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id
            WHERE c.data_location_id = ANY(\(temporary)) AND c.id > \(afterID) AND c.status = 'PRESENT'
              -- A file not yet packaged can never be deleted: no need to ask deletionBlocker.
              -- (A scalar subquery, looked up by primary key for each copy: EXISTS may be planned
              -- as one pass over every packaged file.)
              AND (c.kind <> 'RAW_DATA_FILE'
                   OR (SELECT f.raw_data_package_id FROM raw_data_file f WHERE f.id = c.raw_data_file_id) IS NOT NULL)
              AND c.created_at <= now() - coalesce(l.retention, make_interval(secs => \(defaultRetentionSeconds)))
              AND NOT EXISTS (SELECT 1 FROM operation o WHERE o.physical_copy_id = c.id AND o.operation_type = 'DELETION'
                              AND o.state NOT IN ('cancelled'))
            ORDER BY c.id LIMIT \(limit)
            """).map { (try $0["id"], try $0["data_location_id"]) }
    }

    /// Locks the copy and says why it may not be deleted now (nil: it may). Call inside the
    /// transaction that then deletes it and marks it DELETED, so the answer still holds.
    ///
    /// A copy in a SOURCE or BUFFER location may go only when every raw data package it holds has
    /// verified copies in active long-term archives at the required number of distinct sites (the
    /// topology's `required_archive_sites`, else every site that has an active long-term archive;
    /// counted by the view `package_archive_sites_held`, the rule the status figures use), and
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
                   coalesce((SELECT h.sites FROM package_archive_sites_held h WHERE h.raw_data_package_id = p.id), 0)::int AS archived
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
