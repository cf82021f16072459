import Foundation
import Postgres

/// An object a storage listing returned, as the audit keeps it.
public struct ListedObject: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var modified: Date

    public init(key: String, size: Int64, modified: Date) {
        self.key = key
        self.size = size
        self.modified = modified
    }
}

/// What an audit's comparison found, before anything is recorded.
public struct AuditCounts: Sendable, Equatable {
    public var lost: Int64
    public var dark: Int64
    public var staleTemporary: Int64
}

/// The consistency audit compares a streamed listing of a location's storage with the catalogue.
/// The listing goes into a temporary table of the runner's session, a page at a time, so the
/// runner's memory does not grow with the location; the comparison is then two joins.
extension OpsDB {
    /// Objects younger than this are neither dark nor stale: a write may be recording its copy.
    static let auditGrace: PostgresQuery = "interval '1 hour'"
    /// Dark and stale findings kept per run (their counts are always exact).
    public static let auditFindingsKept = 100_000

    /// Temporary names of interrupted writes (`.<name>.ccat-partial`) and what is kept aside.
    static let partialPattern: PostgresQuery = #"'(^|/)\.[^/]+\.ccat-partial$'"#
    static let ignoredPattern: PostgresQuery = #"'^\.ccat-(quarantine|staging)(/|$)'"#

    public func beginAuditListing() async throws {
        try await connection.execute("""
            CREATE TEMPORARY TABLE IF NOT EXISTS ccat_audit_listing (
                relative_path text PRIMARY KEY, size_bytes bigint NOT NULL, modified_at timestamptz NOT NULL)
            """)
        try await connection.execute("TRUNCATE pg_temp.ccat_audit_listing")
    }

    /// One page of the listing (modification times go as seconds since 1970: cheaper to write out).
    public func addAuditListing(_ objects: [ListedObject]) async throws {
        guard !objects.isEmpty else { return }
        try await connection.execute("""
            INSERT INTO pg_temp.ccat_audit_listing (relative_path, size_bytes, modified_at)
            SELECT key, size, to_timestamp(modified)
            FROM unnest(\(objects.map(\.key))::text[], \(objects.map(\.size))::bigint[],
                        \(objects.map(\.modified.timeIntervalSince1970))::float8[]) AS page (key, size, modified)
            ON CONFLICT (relative_path) DO NOTHING
            """)
    }

    /// Copies the catalogue has as PRESENT (and whose row did not change since the listing started:
    /// a copy repaired or re-verified meanwhile may have been written after the walk passed it)
    /// that the listing lacks or has with another size.
    func lostCopies(locationID: Int64, listedSince: Date) -> PostgresQuery {
        """
        SELECT c.id, c.relative_path, c.size_bytes, l.size_bytes AS found_size FROM physical_copy c
        LEFT JOIN pg_temp.ccat_audit_listing l ON l.relative_path = c.relative_path
        WHERE c.data_location_id = \(locationID) AND c.status = 'PRESENT' AND c.updated_at < \(listedSince)
          AND (l.relative_path IS NULL OR l.size_bytes IS DISTINCT FROM c.size_bytes)
        """
    }

    /// Listed objects no live copy of the location names (not ours to keep aside, not a temporary
    /// name, older than the grace period).
    func darkObjects(locationID: Int64, listedSince: Date) -> PostgresQuery {
        """
        SELECT l.relative_path, l.size_bytes, l.modified_at FROM pg_temp.ccat_audit_listing l
        WHERE l.relative_path !~ \(Self.partialPattern) AND l.relative_path !~ \(Self.ignoredPattern)
          AND l.modified_at < \(listedSince)::timestamptz - \(Self.auditGrace)
          AND NOT EXISTS (SELECT 1 FROM physical_copy c WHERE c.data_location_id = \(locationID)
                          AND c.relative_path = l.relative_path AND c.status <> 'DELETED')
        """
    }

    /// Temporary files of interrupted writes that are over a day old.
    func staleTemporaries(listedSince: Date) -> PostgresQuery {
        """
        SELECT l.relative_path, l.size_bytes, l.modified_at FROM pg_temp.ccat_audit_listing l
        WHERE l.relative_path ~ \(Self.partialPattern) AND l.modified_at < \(listedSince)::timestamptz - interval '1 day'
        """
    }

    public func auditCounts(locationID: Int64, listedSince: Date) async throws -> AuditCounts {
        func count(_ query: PostgresQuery) async throws -> Int64 {
            try await connection.query("SELECT count(*) AS n FROM (\(query)) q")[0]["n"]
        }
        return AuditCounts(lost: try await count(lostCopies(locationID: locationID, listedSince: listedSince)),
                           dark: try await count(darkObjects(locationID: locationID, listedSince: listedSince)),
                           staleTemporary: try await count(staleTemporaries(listedSince: listedSince)))
    }

    /// Ends an audit: every lost copy is a finding (and, unless the run is suspect, marked
    /// MISSING); dark objects, stale temporary files and incomplete writes older than a day are
    /// findings, the first `auditFindingsKept` of each.
    public func finishAuditRun(_ runID: Int64, locationID: Int64, listedSince: Date, listed: Int64, counts: AuditCounts,
                               incompleteWrites: [ListedObject] = [], brakeLimit: Int64, suspect: Bool, message: String?) async throws {
        for write in incompleteWrites.prefix(Self.auditFindingsKept) {
            try await connection.execute("""
                INSERT INTO integrity_finding (integrity_run_id, kind, relative_path, modified_at, detail)
                VALUES (\(runID), 'STALE_TEMPORARY', \(write.key), \(write.modified), 'an incomplete multipart upload, started then and never finished')
                """)
        }
        try await connection.execute("""
            INSERT INTO integrity_finding (integrity_run_id, kind, physical_copy_id, relative_path, size_bytes, expected_size_bytes, detail)
            SELECT \(runID), 'LOST', id, relative_path, found_size, size_bytes,
                   CASE WHEN found_size IS NULL THEN 'not in the storage listing'
                        ELSE 'the storage has ' || found_size || ' bytes, the catalogue ' || size_bytes END
            FROM (\(lostCopies(locationID: locationID, listedSince: listedSince))) lost
            """)
        for (kind, query) in [(IntegrityFindingKind.dark, darkObjects(locationID: locationID, listedSince: listedSince)),
                              (.staleTemporary, staleTemporaries(listedSince: listedSince))] {
            try await connection.execute("""
                INSERT INTO integrity_finding (integrity_run_id, kind, relative_path, size_bytes, modified_at)
                SELECT \(runID), \(kind), relative_path, size_bytes, modified_at FROM (\(query)) found
                ORDER BY relative_path LIMIT \(Self.auditFindingsKept)
                """)
        }
        if !suspect { try await markDamagedCopies(runID: runID) }
        try await connection.execute("""
            UPDATE integrity_run SET state = \(suspect ? IntegrityRunState.suspect : .completed), finished_at = now(),
                listed_objects = \(listed), lost_count = \(counts.lost), dark_count = \(counts.dark),
                stale_temporary_count = \(counts.staleTemporary + Int64(incompleteWrites.count)), brake_limit = \(brakeLimit), message = \(message)
            WHERE id = \(runID)
            """)
    }

    /// Dark objects of a run that `ccat audit clean --delete-dark` may remove: reported at least
    /// `olderThanSeconds` after they were last modified, not yet removed, and still unknown to the
    /// catalogue now.
    public func deletableDarkFindings(runID: Int64, olderThanSeconds: Int64) async throws -> [IntegrityFinding] {
        try await all(IntegrityFinding.self, """
            SELECT \(Self.integrityFindingColumns) FROM integrity_finding f
            WHERE f.integrity_run_id = \(runID) AND f.kind = 'DARK' AND f.resolved_at IS NULL
              AND f.modified_at < now() - \(olderThanSeconds) * interval '1 second'
              AND NOT EXISTS (SELECT 1 FROM physical_copy c JOIN integrity_run r ON r.id = f.integrity_run_id
                              WHERE c.data_location_id = r.data_location_id AND c.relative_path = f.relative_path
                                AND c.status <> 'DELETED')
            ORDER BY f.id
            """)
    }

    /// Whether a live copy at the location has this path (checked again right before a dark
    /// object is removed).
    public func isCatalogued(locationID: Int64, path: String) async throws -> Bool {
        try await connection.query("""
            SELECT EXISTS (SELECT 1 FROM physical_copy WHERE data_location_id = \(locationID) AND relative_path = \(path)
                           AND status <> 'DELETED') AS known
            """)[0]["known"]
    }

    /// A finding was dealt with (a dark object removed, a copy repaired).
    public func resolveFinding(_ id: Int64, resolution: String) async throws {
        try await connection.execute("""
            UPDATE integrity_finding SET resolved_at = now(), resolution = \(resolution) WHERE id = \(id) AND resolved_at IS NULL
            """)
    }
}
