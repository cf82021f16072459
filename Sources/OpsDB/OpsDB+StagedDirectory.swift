import Foundation
import Postgres

/// What a staged directory holds so far, for the files that describe it: every staged file with
/// its registered SHA-256, and the provenance of the whole (request, packages, the archive copy
/// each package was read from, and when).
public struct StagedDirectoryContents: Sendable {
    public var files: [(path: String, sha256: String)]
    public var provenance: StagingProvenance
}

/// `PROVENANCE.json` of a staged directory: enough for an analysis to record exactly what it read.
public struct StagingProvenance: Codable, Sendable, Equatable {
    public var request: Int64?
    public var user: String?
    public var selection: StagingSelection?
    /// `site.location` of the PROCESSING location, and the directory below its root.
    public var location: String
    public var directory: String
    public var submittedAt: Date?
    public var packages: [Package]

    public struct Package: Codable, Sendable, Equatable {
        public var name: String
        public var observation: String
        /// SHA-256 of the package's tar archive, as archived.
        public var sha256: String?
        public var bytes: Int64?
        public var files: Int
        public var stagedAt: Date
        /// The long-term archive copy it was read from (nil: staged before this was recorded).
        public var archive: Archive?
    }

    public struct Archive: Codable, Sendable, Equatable {
        public var site: String
        public var location: String
        public var copy: Int64
    }
}

extension OpsDB {
    /// Runs `body` in a transaction that holds the lock of the job's directory (shared by every
    /// job of its request), so that the files describing it are rewritten by one job at a time,
    /// each after reading everything staged so far.
    public func withStagedDirectoryLock<T: Sendable>(jobID: Int64, _ body: @Sendable (OpsDB) async throws -> T) async throws -> T {
        try await transaction { db in
            try await db.connection.execute("""
                SELECT pg_advisory_xact_lock(\(Self.stagedDirectoryLockClass),
                    (SELECT hashtext(coalesce('request ' || staging_request_id, 'job ' || id)) FROM staging_job WHERE id = \(jobID)))
                """)
            return try await body(db)
        }
    }

    static let stagedDirectoryLockClass: Int32 = 7264

    /// The packages staged so far into the directory of `jobID` (by any job of its request).
    public func stagedDirectoryContents(jobID: Int64) async throws -> StagedDirectoryContents {
        guard let head = try await connection.query("""
            SELECT j.target_directory, s.short_name || '.' || l.name AS location, r.id AS request, r.username,
                   r.selection::text AS selection, r.submitted_at
            FROM staging_job j JOIN data_location l ON l.id = j.destination_location_id JOIN site s ON s.id = l.site_id
            LEFT JOIN staging_request r ON r.id = j.staging_request_id
            WHERE j.id = \(jobID)
            """).first else { throw NotFoundError(entity: "staging job", key: "\(jobID)") }
        let rows = try await connection.query("""
            SELECT p.id, p.name, o.obs_id, p.checksum, p.size_bytes, jp.staged_at, jp.staged_from_copy_id,
                   cs.short_name AS archive_site, cl.name AS archive_location,
                   f.relative_path, f.checksum AS file_checksum
            FROM staging_job me
            JOIN staging_job j ON j.id = me.id OR (me.staging_request_id IS NOT NULL AND j.staging_request_id = me.staging_request_id)
            JOIN staging_job_package jp ON jp.staging_job_id = j.id AND jp.staged_at IS NOT NULL
            JOIN raw_data_package p ON p.id = jp.raw_data_package_id
            JOIN executed_obs_unit o ON o.id = p.executed_obs_unit_id
            JOIN raw_data_file f ON f.raw_data_package_id = p.id
            LEFT JOIN physical_copy c ON c.id = jp.staged_from_copy_id
            LEFT JOIN data_location cl ON cl.id = c.data_location_id
            LEFT JOIN site cs ON cs.id = cl.site_id
            WHERE me.id = \(jobID) AND f.checksum_algorithm = 'sha256'
            ORDER BY p.name, f.relative_path
            """)
        var files: [(path: String, sha256: String)] = []
        var packages: [StagingProvenance.Package] = []
        var lastPackage: Int64?
        for row in rows {
            files.append((try row["relative_path"], try row["file_checksum"]))
            let id: Int64 = try row["id"]
            if id == lastPackage {
                packages[packages.count - 1].files += 1
                continue
            }
            lastPackage = id
            let copy: Int64? = try row["staged_from_copy_id"]
            let archive = try copy.map { StagingProvenance.Archive(site: try row["archive_site"], location: try row["archive_location"], copy: $0) }
            packages.append(StagingProvenance.Package(name: try row["name"], observation: try row["obs_id"], sha256: try row["checksum"],
                                                      bytes: try row["size_bytes"], files: 1, stagedAt: try row["staged_at"], archive: archive))
        }
        let selection: String? = try head["selection"]
        let provenance = StagingProvenance(request: try head["request"], user: try head["username"],
                                           selection: try selection.map { try StagingSelection.parse($0) },
                                           location: try head["location"], directory: try head["target_directory"],
                                           submittedAt: try head["submitted_at"], packages: packages)
        return StagedDirectoryContents(files: files.sorted { $0.path < $1.path }, provenance: provenance)
    }
}
