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

    /// The ids of the locations of these types, or at these sites. The managers bind them into
    /// their searches as values, so the planner knows which locations a search reads and, from the
    /// statistics of copies per location and status, that the live copies at buffers and sources
    /// are few beside the archives' (an id only known at run time would hide that).
    func locationIDs(types: [LocationType]) async throws -> [Int64] {
        try await connection.query("""
            SELECT id FROM data_location WHERE location_type = ANY(\(types.map(\.rawValue))::location_type[]) ORDER BY id
            """).map { try $0["id"] }
    }

    func locationIDs(siteIDs: [Int64]) async throws -> [Int64] {
        try await connection.query("SELECT id FROM data_location WHERE site_id = ANY(\(siteIDs)) ORDER BY id").map { try $0["id"] }
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

    // Changes `ccat topology apply` makes (TopologySync decides which).

    /// Holds the topology lock until the transaction ends, so two applies never interleave.
    public func lockTopologyForTransaction() async throws {
        try await connection.execute("SELECT pg_advisory_xact_lock(\(Self.topologyLockKey))")
    }

    static let topologyLockKey: Int64 = 0x6363_6174_746f_706f

    public func updateSite(id: Int64, name: String, location: String?) async throws {
        try await connection.execute("UPDATE site SET name = \(name), location = \(location) WHERE id = \(id)")
    }

    /// Deletes a site if nothing refers to it any more: no location, no route. Returns what still
    /// refers to it otherwise (nothing deleted).
    public func deleteSiteIfUnused(id: Int64) async throws -> (locations: Int, routes: Int) {
        let locations: Int = try await connection.query("SELECT count(*) AS n FROM data_location WHERE site_id = \(id)").first?["n"] ?? 0
        let routes: Int = try await connection.query("""
            SELECT count(*) AS n FROM data_transfer_route
            WHERE \(id) IN (origin_site_id, destination_site_id, relay_site_id)
            """).first?["n"] ?? 0
        if locations == 0 && routes == 0 { try await connection.execute("DELETE FROM site WHERE id = \(id)") }
        return (locations, routes)
    }

    /// Sets the location's own columns (its storage, profiles and policy have their own calls).
    public func updateLocation(id: Int64, type: LocationType, priority: Int, active: Bool, fillThresholdPercent: Int,
                               retentionSeconds: Int64?, description: String?) async throws {
        try await connection.execute("""
            UPDATE data_location SET location_type = \(type), priority = \(priority), active = \(active),
                fill_threshold_percent = \(fillThresholdPercent),
                retention = \(retentionSeconds) * interval '1 second', description = \(description)
            WHERE id = \(id)
            """)
    }

    public func deactivateLocation(id: Int64) async throws {
        try await connection.execute("UPDATE data_location SET active = false WHERE id = \(id)")
    }

    /// Deletes a location nothing refers to (see `locationUsage`); its storage rows go with it.
    public func deleteLocation(id: Int64) async throws {
        try await connection.execute("DELETE FROM data_location WHERE id = \(id)")
    }

    // Settings of locations beside their rows.

    /// The ssh destination of a disk location reached over ssh (nil: mounted where it is used).
    public func sshHost(of locationID: Int64) async throws -> String? {
        try await connection.query("SELECT ssh_host FROM disk_data_location WHERE data_location_id = \(locationID)").first?["ssh_host"]
    }

    public func setSSHHost(locationID: Int64, _ host: String?) async throws {
        try await connection.execute("UPDATE disk_data_location SET ssh_host = \(host) WHERE data_location_id = \(locationID)")
    }

    /// The topology's `required_archive_sites` (nil: every site with an active archive).
    public func requiredArchiveSites() async throws -> Int? {
        try await connection.query("SELECT required_archive_sites FROM archive_policy").first?["required_archive_sites"]
    }

    public func setRequiredArchiveSites(_ count: Int?) async throws {
        try await connection.execute("UPDATE archive_policy SET required_archive_sites = \(count), updated_at = now()")
    }

    /// Locations whose latest monitoring check found them unreachable.
    public func unreachableLocations() async throws -> Set<Int64> {
        Set(try await connection.query("SELECT data_location_id FROM data_location_status WHERE NOT reachable")
            .map { try $0["data_location_id"] as Int64 })
    }
}
