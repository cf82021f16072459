import Foundation
import Postgres

/// A long-term archive's `integrity:` settings: how fast fixity goes round, how much it may read a
/// day, how often the storage is audited, and when a pass is suspect as a whole.
public struct IntegrityPolicy: Sendable, Equatable, Codable {
    public var fixityCycleSeconds: Int64
    public var fixityBytesPerDay: Int64?
    public var auditIntervalSeconds: Int64
    public var brakeCount: Int64?

    public static let defaultFixityCycleSeconds: Int64 = 90 * 86_400
    public static let defaultAuditIntervalSeconds: Int64 = 7 * 86_400

    public init(fixityCycleSeconds: Int64 = defaultFixityCycleSeconds, fixityBytesPerDay: Int64? = nil,
                auditIntervalSeconds: Int64 = defaultAuditIntervalSeconds, brakeCount: Int64? = nil) {
        self.fixityCycleSeconds = fixityCycleSeconds
        self.fixityBytesPerDay = fixityBytesPerDay
        self.auditIntervalSeconds = auditIntervalSeconds
        self.brakeCount = brakeCount
    }

    /// How many bad copies one pass may find before the location is suspected as a whole: the
    /// configured count, or 1% of its copies, and never less than one (a single damaged copy is
    /// what fixity is for).
    public func brakeLimit(copies: Int64) -> Int64 {
        max(1, brakeCount ?? copies / 100)
    }

    /// Bytes to re-read per day: the location's bytes spread over the cycle, capped by the budget.
    public func dailyFixityBytes(locationBytes: Int64) -> Int64 {
        let pace = (Double(locationBytes) * 86_400 / Double(max(1, fixityCycleSeconds))).rounded(.up)
        let paced = pace >= Double(Int64.max) ? Int64.max : Int64(pace)
        return min(paced, fixityBytesPerDay ?? Int64.max)
    }
}

/// What the next fixity pass of a location may do: how much is there, how much was read in the
/// last day, and which copies fit in what is left of the day's allowance.
public struct FixityAllowance: Sendable, Equatable {
    public var copies: Int64
    public var bytes: Int64
    public var dailyBytes: Int64
    public var checkedLastDay: Int64
    /// Bytes this pass may still read.
    public var remaining: Int64 { max(0, dailyBytes - checkedLastDay) }
}

extension OpsDB {
    /// The location's policy, or the defaults when the topology sets none.
    public func integrityPolicy(locationID: Int64) async throws -> IntegrityPolicy {
        guard let row = try await connection.query("""
            SELECT extract(epoch FROM fixity_cycle)::bigint AS cycle, fixity_bytes_per_day,
                   extract(epoch FROM audit_interval)::bigint AS audit, brake_count
            FROM integrity_policy WHERE data_location_id = \(locationID)
            """).first else { return IntegrityPolicy() }
        return IntegrityPolicy(fixityCycleSeconds: try row["cycle"], fixityBytesPerDay: try row["fixity_bytes_per_day"],
                               auditIntervalSeconds: try row["audit"], brakeCount: try row["brake_count"])
    }

    public func setIntegrityPolicy(locationID: Int64, _ policy: IntegrityPolicy) async throws {
        try await connection.execute("""
            INSERT INTO integrity_policy (data_location_id, fixity_cycle, fixity_bytes_per_day, audit_interval, brake_count)
            VALUES (\(locationID), \(policy.fixityCycleSeconds) * interval '1 second', \(policy.fixityBytesPerDay),
                    \(policy.auditIntervalSeconds) * interval '1 second', \(policy.brakeCount))
            ON CONFLICT (data_location_id) DO UPDATE SET fixity_cycle = excluded.fixity_cycle,
                fixity_bytes_per_day = excluded.fixity_bytes_per_day, audit_interval = excluded.audit_interval,
                brake_count = excluded.brake_count
            """)
    }

    /// Live copies at a location with a checksum to verify against, and their bytes.
    public func checkableCopies(locationID: Int64) async throws -> (copies: Int64, bytes: Int64) {
        let row = try await connection.query("""
            SELECT count(*) AS copies, coalesce(sum(size_bytes), 0)::bigint AS bytes FROM physical_copy
            WHERE data_location_id = \(locationID) AND status = 'PRESENT' AND checksum IS NOT NULL AND size_bytes IS NOT NULL
            """)[0]
        return (try row["copies"], try row["bytes"])
    }

    /// How much the next fixity pass may read (bytes re-read by passes that ended in the last 24 hours count against the day).
    public func fixityAllowance(locationID: Int64, policy: IntegrityPolicy) async throws -> FixityAllowance {
        let (copies, bytes) = try await checkableCopies(locationID: locationID)
        let checked: Int64 = try await connection.query("""
            SELECT coalesce(sum(checked_bytes), 0)::bigint AS checked FROM integrity_run
            WHERE data_location_id = \(locationID) AND kind = 'FIXITY' AND state <> 'RUNNING'
              AND finished_at > now() - interval '1 day'
            """)[0]["checked"]
        return FixityAllowance(copies: copies, bytes: bytes, dailyBytes: policy.dailyFixityBytes(locationBytes: bytes), checkedLastDay: checked)
    }

    /// The copies checked (or verified) longest ago whose sizes add up to at most `maxBytes` (at least one when
    /// `atLeastOne`, so a copy larger than a day's budget is still checked on a day of its own).
    public func fixityDueCopies(locationID: Int64, maxBytes: Int64, atLeastOne: Bool, limit: Int = 10_000) async throws -> [PhysicalCopy] {
        try await all(PhysicalCopy.self, """
            SELECT \(Self.copyColumns) FROM (
                SELECT *, sum(size_bytes) OVER (ORDER BY checked NULLS FIRST, id) AS running, row_number() OVER (ORDER BY checked NULLS FIRST, id) AS n
                FROM (SELECT *, coalesce(fixity_checked_at, verified_at) AS checked FROM physical_copy
                      WHERE data_location_id = \(locationID) AND status = 'PRESENT' AND checksum IS NOT NULL AND size_bytes IS NOT NULL
                      ORDER BY coalesce(fixity_checked_at, verified_at) NULLS FIRST, id LIMIT \(limit)) due
            ) s
            WHERE running <= \(maxBytes) OR (n = 1 AND \(atLeastOne))
            ORDER BY n
            """)
    }

    /// Whether a fixity pass would check anything now: something is left of the day's allowance
    /// and the next copy fits in it, or nothing was read in the last day at all.
    public func fixityPassWouldCheck(locationID: Int64, policy: IntegrityPolicy) async throws -> Bool {
        let allowance = try await fixityAllowance(locationID: locationID, policy: policy)
        guard allowance.copies > 0 else { return false }
        return !(try await fixityDueCopies(locationID: locationID, maxBytes: allowance.remaining,
                                            atLeastOne: allowance.checkedLastDay == 0, limit: 1)).isEmpty
    }
}
