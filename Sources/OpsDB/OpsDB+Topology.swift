import Foundation
import Postgres

extension OpsDB {
    static let siteColumns: PostgresQuery = "id, name, short_name, location, created_at, updated_at"
    static let locationColumns: PostgresQuery = """
        id, site_id, name, location_type, storage_type, priority, active, fill_threshold_percent,
        extract(epoch FROM retention)::bigint AS retention_seconds, description, created_at, updated_at
        """

    public func insertSite(name: String, shortName: String, location: String? = nil) async throws -> Site {
        try await one(Site.self, """
            INSERT INTO site (name, short_name, location) VALUES (\(name), \(shortName), \(location))
            RETURNING \(Self.siteColumns)
            """)
    }

    public func site(shortName: String) async throws -> Site? {
        try await optional(Site.self, "SELECT \(Self.siteColumns) FROM site WHERE short_name = \(shortName)")
    }

    public func sites() async throws -> [Site] {
        try await all(Site.self, "SELECT \(Self.siteColumns) FROM site ORDER BY short_name")
    }

    /// Inserts a location and its storage row in one transaction.
    public func insertLocation(siteID: Int64, name: String, type: LocationType, storage: LocationStorage,
                               priority: Int = 1, active: Bool = true, fillThresholdPercent: Int = 90,
                               retentionSeconds: Int64? = nil, description: String? = nil) async throws -> DataLocation {
        try await transaction { db in
            let location = try await db.one(DataLocation.self, """
                INSERT INTO data_location (site_id, name, location_type, storage_type, priority, active,
                                           fill_threshold_percent, retention, description)
                VALUES (\(siteID), \(name), \(type), \(storage.storageType), \(priority), \(active),
                        \(fillThresholdPercent), \(retentionSeconds) * interval '1 second', \(description))
                RETURNING \(Self.locationColumns)
                """)
            try await db.insertStorage(locationID: location.id, storage)
            return location
        }
    }

    public func locations(activeOnly: Bool = false) async throws -> [DataLocation] {
        try await all(DataLocation.self, """
            SELECT \(Self.locationColumns) FROM data_location
            WHERE active OR NOT \(activeOnly) ORDER BY site_id, location_type, priority, name
            """)
    }

    public func location(id: Int64) async throws -> DataLocation? {
        try await optional(DataLocation.self, "SELECT \(Self.locationColumns) FROM data_location WHERE id = \(id)")
    }

    public func location(siteShortName: String, name: String) async throws -> DataLocation? {
        try await optional(DataLocation.self, """
            SELECT \(Self.locationColumns) FROM data_location
            WHERE name = \(name) AND site_id = (SELECT id FROM site WHERE short_name = \(siteShortName))
            """)
    }

    /// The storage row of a location.
    public func storage(of location: DataLocation) async throws -> LocationStorage {
        switch location.storageType {
        case .disk:
            let row = try await one(DiskDataLocation.self, "SELECT data_location_id, root_path FROM disk_data_location WHERE data_location_id = \(location.id)")
            return .disk(rootPath: row.rootPath)
        case .s3:
            let row = try await one(S3DataLocation.self, """
                SELECT data_location_id, endpoint_url, bucket, region, prefix, credentials_source, path_style
                FROM s3_data_location WHERE data_location_id = \(location.id)
                """)
            return .s3(endpointURL: row.endpointURL, bucket: row.bucket, region: row.region, prefix: row.prefix,
                       credentialsSource: row.credentialsSource, pathStyle: row.pathStyle)
        case .tape:
            let row = try await one(TapeDataLocation.self, "SELECT data_location_id, library, pool FROM tape_data_location WHERE data_location_id = \(location.id)")
            return .tape(library: row.library, pool: row.pool)
        }
    }
}
