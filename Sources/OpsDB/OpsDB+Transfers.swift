import Foundation
import Postgres

// Data transfers between buffers: the record of each, and which bundles are to be sent, replicated,
// relayed or unpacked.

extension OpsDB {
    static let transferColumns: PostgresQuery = """
        id, data_transfer_package_id, origin_location_id, destination_location_id, route_id, method, status, unpack_status,
        attempts, unpack_attempts, bytes_transferred, error_message, unpack_error_message, started_at, finished_at, unpacked_at
        """

    public func dataTransfer(id: Int64) async throws -> DataTransfer? {
        try await optional(DataTransfer.self, "SELECT \(Self.transferColumns) FROM data_transfer WHERE id = \(id)")
    }

    public func createDataTransfer(bundleID: Int64, originLocationID: Int64, destinationLocationID: Int64, routeID: Int64?,
                                   method: TransferMethod) async throws -> DataTransfer {
        // The link it travels gets its concurrency row (default bounds) if it has none yet, in the
        // same statement: one round trip per transfer.
        try await one(DataTransfer.self, """
            WITH transfer AS (
                INSERT INTO data_transfer (data_transfer_package_id, origin_location_id, destination_location_id, route_id, method)
                VALUES (\(bundleID), \(originLocationID), \(destinationLocationID), \(routeID), \(method))
                RETURNING \(Self.transferColumns)
            ), link AS (
                \(Self.insertLinks("SELECT origin_location_id, destination_location_id FROM transfer"))
            )
            SELECT \(Self.transferColumns) FROM transfer
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

    public func transfersWithoutOperation(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer", column: "data_transfer_id", type: .dataTransfer, status: .pending, limit: limit)
    }

    /// What scheduling a transfer needs, for many at once: its ends and its bundle's size. Ids no
    /// longer there are missing from the answer.
    public func transferEnds(ids: [Int64]) async throws -> [Int64: (origin: Int64, destination: Int64, bundleBytes: Int64)] {
        var ends: [Int64: (origin: Int64, destination: Int64, bundleBytes: Int64)] = [:]
        for row in try await connection.query("""
            SELECT t.id, t.origin_location_id, t.destination_location_id,
                   -- by key per transfer: a join could hash every bundle ever made
                   coalesce((SELECT b.size_bytes FROM data_transfer_package b WHERE b.id = t.data_transfer_package_id), 0) AS bytes
            FROM data_transfer t WHERE t.id = ANY(\(ids))
            """) {
            ends[try row["id"]] = (try row["origin_location_id"], try row["destination_location_id"], try row["bytes"])
        }
        return ends
    }

    /// Transfers that arrived and wait for unpacking, with no unpack operation yet.
    public func transfersToUnpack(limit: Int) async throws -> [Int64] {
        try await orphans("data_transfer", column: "data_transfer_id", type: .dataTransferUnpacking, status: .completed,
                          unpackPending: true, limit: limit)
    }

    /// Completed bundles in a buffer of `siteIDs` (the SOURCE sites) that no transfer has taken yet.
    public func bundlesToSend(originSiteIDs: [Int64], limit: Int) async throws -> [DataTransferPackage] {
        // Found through the bundles' live copies at the origin sites (those not yet sent and those
        // waiting to be deleted), not through every bundle ever made.
        let origins = try await locationIDs(siteIDs: originSiteIDs)
        return try await all(DataTransferPackage.self, """
            SELECT \(Self.bundleColumns) FROM data_transfer_package b
            WHERE b.status = 'COMPLETED'
              AND b.id = ANY(ARRAY(SELECT c.data_transfer_package_id FROM physical_copy c
                                   WHERE c.data_location_id = ANY(\(origins)) AND c.status = 'PRESENT' AND c.kind = 'DATA_TRANSFER_PACKAGE'))
              AND b.origin_location_id = ANY(\(origins))
              AND NOT EXISTS (SELECT 1 FROM data_transfer t WHERE t.data_transfer_package_id = b.id)
            ORDER BY b.id LIMIT \(limit)
            """)
    }

    /// Bundles that arrived verified at a buffer of an archive site and have not reached every
    /// archive site yet: (bundle, the buffer holding it, sites it was or is being sent to).
    public func bundlesToReplicate(archiveSiteIDs: [Int64], limit: Int) async throws
        -> [(bundleID: Int64, bundleName: String, originLocationID: Int64, bufferID: Int64, siteIDs: [Int64])] {
        // Driven by the bundles' live copies at the archive sites: what arrived and is not yet
        // deleted, never the history of transfers.
        let arrived = try await locationIDs(siteIDs: archiveSiteIDs)
        return try await connection.query("""
            SELECT t.data_transfer_package_id AS bundle, b.name, b.origin_location_id, t.destination_location_id AS buffer,
                   (SELECT array_agg(DISTINCT l2.site_id) FROM data_transfer t2 JOIN data_location l2 ON l2.id = t2.destination_location_id
                    WHERE t2.data_transfer_package_id = t.data_transfer_package_id) AS sites
            FROM physical_copy c
            JOIN data_transfer t ON t.data_transfer_package_id = c.data_transfer_package_id AND t.destination_location_id = c.data_location_id
            JOIN data_transfer_package b ON b.id = t.data_transfer_package_id
            WHERE c.data_location_id = ANY(\(arrived)) AND c.kind = 'DATA_TRANSFER_PACKAGE' AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
              AND t.status = 'COMPLETED'
              AND (SELECT count(DISTINCT l2.site_id) FROM data_transfer t2 JOIN data_location l2 ON l2.id = t2.destination_location_id
                   WHERE t2.data_transfer_package_id = t.data_transfer_package_id
                     AND l2.site_id = ANY(\(archiveSiteIDs))) < cardinality(\(archiveSiteIDs))
            ORDER BY t.id LIMIT \(limit)
            """).map { (try $0["bundle"], try $0["name"], try $0["origin_location_id"], try $0["buffer"], try $0["sites"]) }
    }

    /// Bundles that reached the relay site of their RELAY route, verified there, and were not sent
    /// on to the route's destination yet: (bundle, the relay buffer holding it, the route).
    public func relayedBundlesToForward(limit: Int) async throws -> [(bundleID: Int64, bufferID: Int64, routeID: Int64)] {
        let buffers = try await locationIDs(types: [.buffer])
        return try await connection.query("""
            SELECT t.data_transfer_package_id AS bundle, t.destination_location_id AS buffer, r.id AS route
            FROM physical_copy c
            JOIN data_transfer t ON t.data_transfer_package_id = c.data_transfer_package_id AND t.destination_location_id = c.data_location_id
            JOIN data_transfer_route r ON r.id = t.route_id AND r.route_type = 'RELAY' AND r.active
            JOIN data_location l ON l.id = t.destination_location_id AND l.site_id = r.relay_site_id
            WHERE c.data_location_id = ANY(\(buffers)) AND c.kind = 'DATA_TRANSFER_PACKAGE' AND c.status = 'PRESENT' AND c.verified_at IS NOT NULL
              AND t.status = 'COMPLETED'
              AND NOT EXISTS (SELECT 1 FROM data_transfer n JOIN data_location nl ON nl.id = n.destination_location_id
                              WHERE n.data_transfer_package_id = t.data_transfer_package_id AND nl.site_id = r.destination_site_id)
            ORDER BY t.id LIMIT \(limit)
            """).map { (try $0["bundle"], try $0["buffer"], try $0["route"]) }
    }
}
