import Foundation
import Postgres

/// The latest monitoring result of a location.
public struct LocationStatus: Codable, Sendable, Equatable {
    public var dataLocationID: Int64
    public var measuredAt: Date
    public var reachable: Bool
    public var totalBytes: Int64?
    public var freeBytes: Int64?
    public var usedBytes: Int64?
    public var errorMessage: String?

    public init(dataLocationID: Int64, measuredAt: Date, reachable: Bool, totalBytes: Int64?, freeBytes: Int64?,
                usedBytes: Int64?, errorMessage: String?) {
        self.dataLocationID = dataLocationID
        self.measuredAt = measuredAt
        self.reachable = reachable
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.usedBytes = usedBytes
        self.errorMessage = errorMessage
    }
}

extension OpsDB {
    static let routeColumns: PostgresQuery = """
        id, name, origin_site_id, destination_site_id, route_type, relay_site_id, origin_location_id,
        destination_location_id, method, active
        """

    public func routes() async throws -> [DataTransferRoute] {
        try await all(DataTransferRoute.self, "SELECT \(Self.routeColumns) FROM data_transfer_route ORDER BY name")
    }

    public func insertRoute(name: String, originSiteID: Int64, destinationSiteID: Int64, type: RouteType, relaySiteID: Int64?,
                            originLocationID: Int64?, destinationLocationID: Int64?, method: TransferMethod) async throws -> DataTransferRoute {
        try await one(DataTransferRoute.self, """
            INSERT INTO data_transfer_route (name, origin_site_id, destination_site_id, route_type, relay_site_id,
                                             origin_location_id, destination_location_id, method)
            VALUES (\(name), \(originSiteID), \(destinationSiteID), \(type), \(relaySiteID), \(originLocationID), \(destinationLocationID), \(method))
            RETURNING \(Self.routeColumns)
            """)
    }

    /// Deletes a custom route; returns false when there is none by that name.
    public func deleteRoute(name: String) async throws -> Bool {
        try await connection.execute("DELETE FROM data_transfer_route WHERE name = \(name)") == 1
    }

    /// A site's buffers in priority order, each with its latest monitoring result.
    public func buffers(siteShortName: String) async throws -> [(DataLocation, LocationStatus?)] {
        let buffers = try await all(DataLocation.self, """
            SELECT \(Self.locationColumns) FROM data_location
            WHERE location_type = 'BUFFER' AND site_id = (SELECT id FROM site WHERE short_name = \(siteShortName))
            ORDER BY priority, name
            """)
        let statuses = try await all(LocationStatus.self, """
            SELECT data_location_id, measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message
            FROM data_location_status WHERE data_location_id = ANY(\(buffers.map(\.id)))
            """)
        let byID = Dictionary(uniqueKeysWithValues: statuses.map { ($0.dataLocationID, $0) })
        return buffers.map { ($0, byID[$0.id]) }
    }

    /// Records a monitoring result for a location (the latest one replaces the previous).
    public func recordLocationStatus(_ status: LocationStatus) async throws {
        try await connection.execute("""
            INSERT INTO data_location_status (data_location_id, measured_at, reachable, total_bytes, free_bytes, used_bytes, error_message)
            VALUES (\(status.dataLocationID), \(status.measuredAt), \(status.reachable), \(status.totalBytes), \(status.freeBytes),
                    \(status.usedBytes), \(status.errorMessage))
            ON CONFLICT (data_location_id) DO UPDATE SET
                measured_at = excluded.measured_at, reachable = excluded.reachable, total_bytes = excluded.total_bytes,
                free_bytes = excluded.free_bytes, used_bytes = excluded.used_bytes, error_message = excluded.error_message
            """)
    }

    /// The next position of `sourceSiteID`'s round-robin over `modulo` archive sites, moved in one
    /// statement under the row's lock (two daemons always get distinct, consecutive positions).
    public func nextRoundRobinIndex(sourceSiteID: Int64, modulo: Int) async throws -> Int {
        try await connection.query("""
            INSERT INTO round_robin_state AS state (source_site_id, last_index, decisions) VALUES (\(sourceSiteID), 0, 1)
            ON CONFLICT (source_site_id) DO UPDATE
                SET last_index = (state.last_index + 1) % \(modulo), decisions = state.decisions + 1
            RETURNING last_index
            """).first?["last_index"] ?? 0
    }
}
