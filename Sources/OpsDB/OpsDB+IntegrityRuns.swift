import Foundation
import Postgres

/// One fixity pass or audit of one location (`integrity_run`).
public struct IntegrityRun: Codable, Sendable, Equatable {
    public var id: Int64
    public var kind: IntegrityRunKind
    public var dataLocationID: Int64
    public var operationID: Int64?
    public var state: IntegrityRunState
    public var startedAt: Date
    public var finishedAt: Date?
    public var cataloguedCopies: Int64
    public var checkedCopies: Int64
    public var checkedBytes: Int64
    public var listedObjects: Int64
    public var lostCount: Int64
    public var corruptedCount: Int64
    public var darkCount: Int64
    public var staleTemporaryCount: Int64
    public var brakeLimit: Int64?
    public var message: String?
    public var confirmedBy: String?
    public var confirmedAt: Date?
}

/// Something a run found (`integrity_finding`).
public struct IntegrityFinding: Codable, Sendable, Equatable {
    public var id: Int64
    public var integrityRunID: Int64
    public var kind: IntegrityFindingKind
    public var physicalCopyID: Int64?
    public var relativePath: String
    public var sizeBytes: Int64?
    public var expectedSizeBytes: Int64?
    public var foundChecksum: String?
    public var modifiedAt: Date?
    public var detail: String?
    public var quarantinePath: String?
    public var resolvedAt: Date?
    public var resolution: String?
}

/// A copy a fixity pass found damaged: gone (or another size), or with other bytes.
public struct FixityProblem: Sendable, Equatable {
    public var copy: PhysicalCopy
    public var kind: IntegrityFindingKind
    public var foundSize: Int64?
    public var foundChecksum: String?
    public var detail: String
    /// Where the damaged object was moved aside, when it was.
    public var quarantinePath: String?

    public init(copy: PhysicalCopy, kind: IntegrityFindingKind, foundSize: Int64?, foundChecksum: String?, detail: String,
                quarantinePath: String? = nil) {
        self.copy = copy
        self.kind = kind
        self.foundSize = foundSize
        self.foundChecksum = foundChecksum
        self.detail = detail
        self.quarantinePath = quarantinePath
    }
}

/// Why `ccat audit confirm` (or another change to a run) is refused.
public struct IntegrityRunRefused: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension OpsDB {
    /// Whether an operation of `type` (a fixity pass or an audit) is waiting or running at the location.
    public func hasLiveOperation(_ type: OperationType, locationID: Int64) async throws -> Bool {
        try await !connection.query("""
            SELECT 1 FROM operation WHERE operation_type = \(type) AND data_location_id = \(locationID)
              AND state NOT IN ('succeeded', 'cancelled') LIMIT 1
            """).isEmpty
    }

    static let integrityRunColumns: PostgresQuery = """
        id, kind, data_location_id, operation_id, state, started_at, finished_at, catalogued_copies, checked_copies,
        checked_bytes, listed_objects, lost_count, corrupted_count, dark_count, stale_temporary_count, brake_limit, message,
        confirmed_by::text AS confirmed_by, confirmed_at
        """
    static let integrityFindingColumns: PostgresQuery = """
        id, integrity_run_id, kind, physical_copy_id, relative_path, size_bytes, expected_size_bytes, found_checksum,
        modified_at, detail, quarantine_path, resolved_at, resolution
        """

    /// Starts the record of a pass. A run of the same operation that is still RUNNING was left by
    /// a runner that died; it ends as FAILED.
    public func startIntegrityRun(_ kind: IntegrityRunKind, locationID: Int64, operationID: Int64?) async throws -> IntegrityRun {
        try await transaction { db in
            if let operationID {
                try await db.connection.execute("""
                    UPDATE integrity_run SET state = 'FAILED', finished_at = now(),
                        message = 'the runner stopped before the run ended; a later attempt ran again'
                    WHERE operation_id = \(operationID) AND state = 'RUNNING'
                    """)
            }
            return try await db.one(IntegrityRun.self, """
                INSERT INTO integrity_run (kind, data_location_id, operation_id, catalogued_copies)
                SELECT \(kind), \(locationID), \(operationID), count(*) FROM physical_copy
                WHERE data_location_id = \(locationID) AND status = 'PRESENT'
                RETURNING \(Self.integrityRunColumns)
                """)
        }
    }

    public func integrityRun(id: Int64) async throws -> IntegrityRun? {
        try await optional(IntegrityRun.self, "SELECT \(Self.integrityRunColumns) FROM integrity_run WHERE id = \(id)")
    }

    /// Runs for `ccat audit list`, newest first.
    public func integrityRuns(locationID: Int64? = nil, kind: IntegrityRunKind? = nil, states: [IntegrityRunState]? = nil,
                              limit: Int) async throws -> [IntegrityRun] {
        let stateNames = states?.map(\.rawValue)
        return try await all(IntegrityRun.self, """
            SELECT \(Self.integrityRunColumns) FROM integrity_run
            WHERE (\(locationID)::bigint IS NULL OR data_location_id = \(locationID))
              AND (\(kind?.rawValue)::text IS NULL OR kind::text = \(kind?.rawValue))
              AND (\(stateNames)::text[] IS NULL OR state::text = ANY(\(stateNames)::text[]))
            ORDER BY started_at DESC, id DESC LIMIT \(limit)
            """)
    }

    /// When the last run of `kind` at the location started, if any ran.
    public func lastIntegrityRunStart(locationID: Int64, kind: IntegrityRunKind) async throws -> Date? {
        try await connection.query("""
            SELECT max(started_at) AS at FROM integrity_run WHERE data_location_id = \(locationID) AND kind = \(kind)
            """)[0]["at"]
    }

    public func integrityFindings(runID: Int64, kinds: [IntegrityFindingKind]? = nil, limit: Int) async throws -> [IntegrityFinding] {
        let kindNames = kinds?.map(\.rawValue)
        return try await all(IntegrityFinding.self, """
            SELECT \(Self.integrityFindingColumns) FROM integrity_finding
            WHERE integrity_run_id = \(runID) AND (\(kindNames)::text[] IS NULL OR kind::text = ANY(\(kindNames)::text[]))
            ORDER BY id LIMIT \(limit)
            """)
    }

    /// Every finding about a copy, oldest first: its history of damage and repair.
    public func integrityFindings(copyID: Int64) async throws -> [IntegrityFinding] {
        try await all(IntegrityFinding.self, """
            SELECT \(Self.integrityFindingColumns) FROM integrity_finding WHERE physical_copy_id = \(copyID) ORDER BY id
            """)
    }

    // MARK: Fixity

    /// Ends a fixity pass: the copies that verified get a new `fixity_checked_at`; the problems are
    /// recorded, and, unless the pass is suspect, their copies are marked CORRUPTED or MISSING.
    public func finishFixityRun(_ runID: Int64, verified: [Int64], checkedBytes: Int64, problems: [FixityProblem],
                                brakeLimit: Int64, suspect: Bool, message: String?) async throws {
        try await connection.execute("""
            UPDATE physical_copy SET fixity_checked_at = now(), updated_at = now() WHERE id = ANY(\(verified)::bigint[]) AND status = 'PRESENT'
            """)
        for problem in problems {
            try await connection.execute("""
                INSERT INTO integrity_finding (integrity_run_id, kind, physical_copy_id, relative_path, size_bytes, expected_size_bytes,
                                               found_checksum, detail, quarantine_path)
                VALUES (\(runID), \(problem.kind), \(problem.copy.id), \(problem.copy.relativePath), \(problem.foundSize),
                        \(problem.copy.sizeBytes), \(problem.foundChecksum), \(problem.detail), \(problem.quarantinePath))
                """)
        }
        if !suspect { try await markDamagedCopies(runID: runID) }
        let lost = problems.count { $0.kind == .lost }
        try await connection.execute("""
            UPDATE integrity_run SET state = \(suspect ? IntegrityRunState.suspect : .completed), finished_at = now(),
                checked_copies = \(Int64(verified.count + problems.count)), checked_bytes = \(checkedBytes),
                lost_count = \(Int64(lost)), corrupted_count = \(Int64(problems.count - lost)), brake_limit = \(brakeLimit), message = \(message)
            WHERE id = \(runID)
            """)
    }

    /// The copies a run found lost or corrupted are marked so (those still PRESENT, and not found
    /// whole by a later pass): they no longer count as archive copies, and the integrity manager
    /// schedules their repair.
    func markDamagedCopies(runID: Int64) async throws {
        try await connection.execute("""
            UPDATE physical_copy c SET status = CASE f.kind WHEN 'LOST' THEN 'MISSING'::physical_copy_status
                                                            ELSE 'CORRUPTED'::physical_copy_status END, updated_at = now()
            FROM integrity_finding f JOIN integrity_run r ON r.id = f.integrity_run_id
            WHERE f.integrity_run_id = \(runID) AND f.physical_copy_id = c.id AND f.kind IN ('LOST', 'CORRUPTED') AND c.status = 'PRESENT'
              AND (c.fixity_checked_at IS NULL OR c.fixity_checked_at < r.started_at)
            """)
    }

    /// `ccat audit confirm`: an admin looked at a suspect run and its findings stand; they are
    /// applied now, as if the brake had not tripped.
    public func confirmIntegrityRun(_ id: Int64) async throws -> IntegrityRun {
        try await transaction { db in
            guard let run = try await db.optional(IntegrityRun.self, """
                SELECT \(Self.integrityRunColumns) FROM integrity_run WHERE id = \(id) FOR UPDATE
                """) else { throw IntegrityRunRefused(description: "no integrity run \(id); 'ccat audit list' shows the runs") }
            guard run.state == .suspect else {
                throw IntegrityRunRefused(description: "integrity run \(id) is \(run.state.rawValue); only SUSPECT runs are confirmed")
            }
            try await db.markDamagedCopies(runID: id)
            try await db.connection.execute("""
                UPDATE integrity_run SET state = 'CONFIRMED', confirmed_by = session_user, confirmed_at = now() WHERE id = \(id)
                """)
            try await db.notifyWork("integrity run \(id) confirmed")
            return try await db.integrityRun(id: id)!
        }
    }
}

/// One long-term archive's integrity, as `ccat status` shows it.
public struct ArchiveIntegrity: Codable, Sendable, Equatable {
    public var location: String
    /// The copy verified longest ago was verified this long ago (nil: no copies).
    public var oldestVerificationDays: Double?
    public var fixityBytesLastDay: Int64
    public var lastFixityAt: Date?
    public var lastAuditAt: Date?
    public var lastAuditState: IntegrityRunState?
    /// Copies marked CORRUPTED or MISSING, waiting for (or in) repair.
    public var damagedCopies: Int
    /// Runs whose findings wait for `ccat audit confirm`.
    public var suspectRuns: [Int64]
}

extension OpsDB {
    public func archiveIntegrity() async throws -> [ArchiveIntegrity] {
        try await all(ArchiveIntegrity.self, """
            SELECT s.short_name || ':' || l.name AS location,
                   -- The copy fixity takes next, by its index: one row however large the archive.
                   (SELECT extract(epoch FROM now() - coalesce(c.fixity_checked_at, c.verified_at)) / 86400 FROM physical_copy c
                    WHERE c.data_location_id = l.id AND c.status = 'PRESENT'
                    ORDER BY coalesce(c.fixity_checked_at, c.verified_at) NULLS FIRST, c.id LIMIT 1)::float8 AS oldest_verification_days,
                   (SELECT coalesce(sum(r.checked_bytes), 0) FROM integrity_run r WHERE r.data_location_id = l.id AND r.kind = 'FIXITY'
                    AND r.finished_at > now() - interval '1 day')::bigint AS fixity_bytes_last_day,
                   (SELECT max(r.finished_at) FROM integrity_run r WHERE r.data_location_id = l.id AND r.kind = 'FIXITY') AS last_fixity_at,
                   a.finished_at AS last_audit_at, a.state AS last_audit_state,
                   (SELECT count(*) FROM physical_copy c WHERE c.data_location_id = l.id AND c.status IN ('CORRUPTED', 'MISSING'))::int AS damaged_copies,
                   ARRAY(SELECT r.id FROM integrity_run r WHERE r.data_location_id = l.id AND r.state = 'SUSPECT' ORDER BY r.id) AS suspect_runs
            FROM data_location l JOIN site s ON s.id = l.site_id
            LEFT JOIN LATERAL (SELECT finished_at, state FROM integrity_run r WHERE r.data_location_id = l.id AND r.kind = 'AUDIT'
                               AND r.state <> 'RUNNING' ORDER BY r.started_at DESC LIMIT 1) a ON true
            WHERE l.location_type = 'LONG_TERM_ARCHIVE' AND l.active
            ORDER BY 1
            """)
    }
}
