import Foundation
import Postgres

/// What `ccat find` looks for: observation ids by glob (`*`, `?`), instruments ('name' or
/// 'name/module'), when the observation started, and whether it must be wholly archived.
public struct ObservationFilter: Codable, Sendable, Equatable {
    public var patterns: [String]
    public var instruments: [String]
    public var from: Date?
    public var to: Date?
    public var archivedOnly: Bool
    public var limit: Int

    public init(patterns: [String] = [], instruments: [String] = [], from: Date? = nil, to: Date? = nil, archivedOnly: Bool = false,
                limit: Int = 200) {
        self.patterns = patterns
        self.instruments = instruments
        self.from = from
        self.to = to
        self.archivedOnly = archivedOnly
        self.limit = limit
    }

    enum CodingKeys: String, CodingKey {
        case patterns, instruments, from, to
        case archivedOnly = "archived_only"
        case limit
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// One observation as `ccat find` shows it (`ccat_find_observations`): counts are of the files of
/// the instruments asked for.
public struct FoundObservation: Codable, Sendable, Equatable {
    public var obsID: String
    public var sourceName: String?
    public var startTime: Date?
    public var endTime: Date?
    public var instruments: [String]
    public var files: Int
    public var bytes: Int64
    public var packages: Int
    public var archivedPackages: Int
    public var unpackagedFiles: Int
    /// Sites whose long-term archives hold a verified copy of every package of it.
    public var archiveSites: [String]

    /// Every file packaged and every package archived somewhere.
    public var isArchived: Bool { unpackagedFiles == 0 && archivedPackages == packages }
}

/// An archive a package can be staged from, nearest to the destination first.
public struct PackageArchive: Codable, Sendable, Equatable {
    public var site: String
    public var location: String
}

extension OpsDB {
    public func findObservations(_ filter: ObservationFilter) async throws -> [FoundObservation] {
        try await all(FoundObservation.self, "SELECT * FROM ccat_find_observations(\(try filter.json())::jsonb)")
    }

    /// Where staging into `destination` would read each package from, nearest first.
    public func packageArchives(_ packageIDs: [Int64], destination: Int64) async throws -> [Int64: [PackageArchive]] {
        var archives: [Int64: [PackageArchive]] = [:]
        for row in try await connection.query("""
            SELECT package_id, site, location FROM ccat_package_archives(\(packageIDs)::bigint[], \(destination)) ORDER BY package_id, rank
            """) {
            archives[try row["package_id"], default: []].append(PackageArchive(site: try row["site"], location: try row["location"]))
        }
        return archives
    }

    /// Bytes per second of recent staging into `destination` (nil: nothing staged there lately).
    public func stagingThroughput(destination: Int64) async throws -> (bytesPerSecond: Double, operations: Int)? {
        guard let row = try await connection.query("SELECT bytes_per_second, operations FROM ccat_staging_throughput(\(destination))").first,
              let rate: Double = try row["bytes_per_second", as: Double?.self], rate > 0 else { return nil }
        return (rate, try row["operations"])
    }
}
