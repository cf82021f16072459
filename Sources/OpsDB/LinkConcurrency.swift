import Foundation
import Postgres

/// How many batch jobs may carry a link's transfers at once, and what the optimizer last saw.
public struct LinkConcurrency: Codable, Sendable, Equatable {
    public var origin: String
    public var destination: String
    public var originSiteID: Int64
    public var destinationSiteID: Int64
    public var activeLimit: Int
    public var minActive: Int
    public var maxActive: Int
    public var configured: Bool
    public var emaBytesPerSecond: Double?
    public var successRate: Double?
    public var decidedAt: Date
    /// Seconds since that decision, by the database's clock (the one `decided_at` was set by).
    public var secondsSinceDecision: Double
    public var reason: String
    /// Jobs carrying the link's transfers now, and due transfers waiting for a slot.
    public var activeJobs: Int
    public var waitingOperations: Int
    /// The cap of a bandwidth window in force now, shared by the link's jobs.
    public var rateCapBitsPerSecond: Int64?
    /// Bytes the link has carried (runners count them as their copies send), and the count at
    /// the last decision.
    public var bytesMoved: Int64
    public var bytesAtDecision: Int64

    /// Bounds of a link the topology does not name (FTS3 keeps 2 to 60 per link; a batch job here
    /// is a whole transfer process, so fewer).
    public static let defaultBounds = 1...8
    /// Where a new link starts.
    public static let defaultStart = 2
}

/// What the optimizer measured on a link since its last decision.
public struct LinkMeasurement: Sendable, Equatable {
    public var attempts: Int
    public var succeeded: Int
    public var bytes: Int64
    public var seconds: Double
    public var activeJobs: Int
    public var waitingOperations: Int

    public init(attempts: Int, succeeded: Int, bytes: Int64, seconds: Double, activeJobs: Int, waitingOperations: Int) {
        self.attempts = attempts
        self.succeeded = succeeded
        self.bytes = bytes
        self.seconds = seconds
        self.activeJobs = activeJobs
        self.waitingOperations = waitingOperations
    }

    /// The share of attempts that succeeded; where none finished in the interval but the link
    /// carried bytes, the link's rate from before (a transfer still on its way has not failed).
    public var previousSuccessRate: Double?
    public var successRate: Double? { attempts > 0 ? Double(succeeded) / Double(attempts) : (bytes > 0 ? previousSuccessRate ?? 1 : nil) }
    public var bytesPerSecond: Double? { seconds > 0 ? Double(bytes) / seconds : nil }
}

/// One decision of the link optimizer.
public struct LinkDecision: Sendable, Equatable {
    public var limit: Int
    public var emaBytesPerSecond: Double?
    public var reason: String

    public init(limit: Int, emaBytesPerSecond: Double?, reason: String) {
        self.limit = limit
        self.emaBytesPerSecond = emaBytesPerSecond
        self.reason = reason
    }
}

extension OpsDB {
    static let linkColumns: PostgresQuery = """
        os.short_name AS origin, ds.short_name AS destination, lc.origin_site_id, lc.destination_site_id, lc.active_limit,
        lc.min_active, lc.max_active, lc.configured, lc.ema_bytes_per_second, lc.success_rate, lc.decided_at, lc.reason,
        extract(epoch FROM now() - lc.decided_at)::float8 AS seconds_since_decision,
        ccat_link_transfer_jobs(lc.origin_site_id, lc.destination_site_id) AS active_jobs,
        (SELECT count(*) FROM operation o JOIN data_transfer t ON t.id = o.data_transfer_id
           JOIN data_location a ON a.id = t.origin_location_id JOIN data_location b ON b.id = t.destination_location_id
          WHERE o.operation_type = 'DATA_TRANSFER' AND o.state = 'pending' AND o.next_attempt_at <= now()
            AND a.site_id = lc.origin_site_id AND b.site_id = lc.destination_site_id)::int AS waiting_operations,
        ccat_link_rate_cap(lc.origin_site_id, lc.destination_site_id) AS rate_cap_bits_per_second,
        lc.bytes_moved, lc.bytes_at_decision
        """

    /// Every link that has carried or waits to carry a transfer, with its jobs now. (Rows are made
    /// with the default bounds as transfers are created, and by the dispatcher for transfers older
    /// than this table.)
    public func linkConcurrency() async throws -> [LinkConcurrency] {
        try await all(LinkConcurrency.self, """
            SELECT \(Self.linkColumns) FROM link_concurrency lc
            JOIN site os ON os.id = lc.origin_site_id JOIN site ds ON ds.id = lc.destination_site_id
            ORDER BY os.short_name, ds.short_name
            """)
    }

    /// The SQL that gives the links of the transfers `source` selects (columns origin_location_id,
    /// destination_location_id) a row with the default bounds, unless they have one.
    static func insertLinks(_ source: PostgresQuery) -> PostgresQuery {
        """
        INSERT INTO link_concurrency (origin_site_id, destination_site_id, active_limit, min_active, max_active)
        SELECT DISTINCT a.site_id, b.site_id, \(LinkConcurrency.defaultStart), \(LinkConcurrency.defaultBounds.lowerBound), \(LinkConcurrency.defaultBounds.upperBound)
        FROM (\(source)) AS s JOIN data_location a ON a.id = s.origin_location_id JOIN data_location b ON b.id = s.destination_location_id
        WHERE a.site_id <> b.site_id
        ON CONFLICT DO NOTHING
        """
    }

    /// What the link did since `since` (its last decision): the bytes it carried, counted as its
    /// transfers ran (`bytes_moved` as read with `link`), and the DATA_TRANSFER attempts that
    /// finished, for the success rate.
    public func linkMeasurement(_ link: LinkConcurrency, since: Date) async throws -> LinkMeasurement {
        let row = try await connection.query("""
            SELECT count(*)::int AS attempts, (count(*) FILTER (WHERE ta.succeeded))::int AS succeeded,
                   extract(epoch FROM now() - \(since))::float8 AS seconds
            FROM transfer_attempt ta
            JOIN data_location a ON a.id = ta.origin_location_id JOIN data_location b ON b.id = ta.destination_location_id
            WHERE ta.operation_type = 'DATA_TRANSFER' AND ta.finished_at > \(since)
              AND a.site_id = \(link.originSiteID) AND b.site_id = \(link.destinationSiteID)
            """).first
        var measured = LinkMeasurement(attempts: try row?["attempts"] ?? 0, succeeded: try row?["succeeded"] ?? 0,
                                       bytes: max(0, link.bytesMoved - link.bytesAtDecision),
                                       seconds: try row?["seconds"] ?? 0, activeJobs: link.activeJobs, waitingOperations: link.waitingOperations)
        measured.previousSuccessRate = link.successRate
        return measured
    }

    /// Adds bytes a transfer's copy has sent to its link's count (`ccat_link_sent`: a runner only
    /// for a transfer its job is running).
    public func recordLinkBytes(transferID: Int64, bytes: Int64) async throws {
        guard bytes > 0 else { return }
        try await connection.execute("SELECT ccat_link_sent(\(transferID), \(bytes))")
    }

    /// Records a decision and makes it the link's limit.
    public func recordLinkDecision(_ link: LinkConcurrency, measured: LinkMeasurement, decision: LinkDecision) async throws {
        try await transaction { db in
            try await db.connection.execute("""
                UPDATE link_concurrency SET active_limit = \(decision.limit), ema_bytes_per_second = \(decision.emaBytesPerSecond), bytes_at_decision = \(link.bytesMoved),
                       success_rate = coalesce(\(measured.successRate), success_rate), decided_at = now(), reason = \(decision.reason)
                WHERE origin_site_id = \(link.originSiteID) AND destination_site_id = \(link.destinationSiteID)
                """)
            try await db.connection.execute("""
                INSERT INTO link_concurrency_decision (origin_site_id, destination_site_id, previous_limit, new_limit, attempts, success_rate,
                                                       bytes_per_second, ema_bytes_per_second, active_jobs, waiting_operations, reason)
                VALUES (\(link.originSiteID), \(link.destinationSiteID), \(link.activeLimit), \(decision.limit), \(measured.attempts),
                        \(measured.successRate), \(measured.bytesPerSecond), \(decision.emaBytesPerSecond), \(measured.activeJobs),
                        \(measured.waitingOperations), \(decision.reason))
                """)
        }
    }

    /// Sets a link's bounds (the topology's `links:`), keeping its limit inside them; nil bounds
    /// return the link to the defaults.
    public func setLinkBounds(originSiteID: Int64, destinationSiteID: Int64, bounds: ClosedRange<Int>?) async throws {
        let range = bounds ?? LinkConcurrency.defaultBounds
        let start = min(max(LinkConcurrency.defaultStart, range.lowerBound), range.upperBound)
        try await connection.execute("""
            INSERT INTO link_concurrency (origin_site_id, destination_site_id, active_limit, min_active, max_active, configured)
            VALUES (\(originSiteID), \(destinationSiteID), \(start), \(range.lowerBound), \(range.upperBound), \(bounds != nil))
            ON CONFLICT (origin_site_id, destination_site_id) DO UPDATE
               SET min_active = excluded.min_active, max_active = excluded.max_active, configured = excluded.configured,
                   active_limit = least(greatest(link_concurrency.active_limit, excluded.min_active), excluded.max_active)
            """)
    }

    /// A link's bandwidth windows, in the order they were given.
    public func linkWindows(originSiteID: Int64, destinationSiteID: Int64) async throws -> [LinkWindow] {
        try await connection.query("""
            SELECT to_char(starts, 'HH24:MI') AS starts, to_char(ends, 'HH24:MI') AS ends, timezone, max_bits_per_second FROM link_window
            WHERE origin_site_id = \(originSiteID) AND destination_site_id = \(destinationSiteID) ORDER BY id
            """).map { LinkWindow(starts: try $0["starts"], ends: try $0["ends"], timezone: try $0["timezone"], maxBitsPerSecond: try $0["max_bits_per_second"]) }
    }

    /// Replaces a link's bandwidth windows.
    public func setLinkWindows(originSiteID: Int64, destinationSiteID: Int64, windows: [LinkWindow]) async throws {
        try await connection.execute("DELETE FROM link_window WHERE origin_site_id = \(originSiteID) AND destination_site_id = \(destinationSiteID)")
        for window in windows {
            try await connection.execute("""
                INSERT INTO link_window (origin_site_id, destination_site_id, starts, ends, timezone, max_bits_per_second)
                VALUES (\(originSiteID), \(destinationSiteID), \(window.starts)::time, \(window.ends)::time, \(window.timezone), \(window.maxBitsPerSecond))
                """)
        }
    }

    /// Links with bandwidth windows (origin, destination).
    public func linksWithWindows() async throws -> [(origin: Int64, destination: Int64)] {
        try await connection.query("SELECT DISTINCT origin_site_id, destination_site_id FROM link_window ORDER BY 1, 2")
            .map { (try $0["origin_site_id"], try $0["destination_site_id"]) }
    }

    /// This transfer's share of its link's cap in force now (bits per second), or nil.
    public func linkRateShare(transferID: Int64) async throws -> Int64? {
        try await connection.query("SELECT ccat_link_rate_share(\(transferID)) AS share").first?["share"]
    }

    /// The configured links (for `ccat topology apply` to compare with the file).
    public func configuredLinks() async throws -> [(origin: Int64, destination: Int64, bounds: ClosedRange<Int>)] {
        try await connection.query("SELECT origin_site_id, destination_site_id, min_active, max_active FROM link_concurrency WHERE configured")
            .map { row in
                let low: Int = try row["min_active"], high: Int = try row["max_active"]
                return (try row["origin_site_id"], try row["destination_site_id"], low...high)
            }
    }

    /// Due DATA_TRANSFER operations of `queue` on one link that has a free slot (the link of the
    /// first due operation among links with room), locked for a new job; empty when every link
    /// with due work is at its limit. A job takes at most `limit`, and at most the link's due
    /// transfers divided by its `max_active`, so that transfers are left for the jobs a raised
    /// limit would add.
    public func lockDueTransfers(queue: String, limit: Int) async throws -> [OperationRecord] {
        try await connection.execute(Self.insertLinks("""
            SELECT t.origin_location_id, t.destination_location_id FROM operation o JOIN data_transfer t ON t.id = o.data_transfer_id
            WHERE o.queue = \(queue) AND o.state = 'pending'
            """))
        return try await all(OperationRecord.self, """
            WITH due AS (
                SELECT o.id, a.site_id AS origin, b.site_id AS destination, o.priority, o.next_attempt_at
                FROM operation o LEFT JOIN data_transfer t ON t.id = o.data_transfer_id
                LEFT JOIN data_location a ON a.id = t.origin_location_id LEFT JOIN data_location b ON b.id = t.destination_location_id
                WHERE o.queue = \(queue) AND o.state = 'pending' AND o.next_attempt_at <= now()
            ), open AS (
                SELECT lc.origin_site_id, lc.destination_site_id FROM link_concurrency lc
                WHERE lc.active_limit > ccat_link_transfer_jobs(lc.origin_site_id, lc.destination_site_id)
            ), chosen AS (
                -- A transfer within one site (or without a transfer row) is not on a link: it always has room.
                SELECT due.origin, due.destination FROM due
                WHERE due.origin IS NULL OR due.origin = due.destination
                   OR EXISTS (SELECT 1 FROM open WHERE open.origin_site_id = due.origin AND open.destination_site_id = due.destination)
                ORDER BY due.priority DESC, due.next_attempt_at, due.id LIMIT 1
            ), mine AS (
                SELECT due.id FROM due JOIN chosen ON due.origin IS NOT DISTINCT FROM chosen.origin
                                                  AND due.destination IS NOT DISTINCT FROM chosen.destination
            ), share AS (
                -- A job on a link takes at most its share of the link's due transfers at the link's
                -- maximum, so the optimizer can still raise the link's jobs to that maximum.
                SELECT ceil((SELECT count(*) FROM mine)::float8 / coalesce(max(lc.max_active), 1))::int AS n
                FROM chosen LEFT JOIN link_concurrency lc ON lc.origin_site_id = chosen.origin AND lc.destination_site_id = chosen.destination
                                                         AND chosen.origin <> chosen.destination
            )
            SELECT \(Self.operationColumns) FROM operation
            WHERE id IN (SELECT id FROM mine)
            ORDER BY priority DESC, next_attempt_at, id
            LIMIT least(\(limit), (SELECT n FROM share))
            FOR UPDATE SKIP LOCKED
            """)
    }
}

/// A time-of-day window in which a link carries at most `maxBitsPerSecond`, shared by its
/// transfer jobs (`to` before `from`: the window spans midnight).
public struct LinkWindow: Sendable, Equatable, Codable {
    public var starts: String
    public var ends: String
    public var timezone: String
    public var maxBitsPerSecond: Int64

    public init(starts: String, ends: String, timezone: String, maxBitsPerSecond: Int64) {
        self.starts = starts
        self.ends = ends
        self.timezone = timezone
        self.maxBitsPerSecond = maxBitsPerSecond
    }

    /// Minutes after midnight of "HH:MM".
    public static func minutes(_ text: String) -> Int? {
        guard let match = text.wholeMatch(of: /([01][0-9]|2[0-3]):([0-5][0-9])/), let hours = Int(match.1), let minutes = Int(match.2) else { return nil }
        return hours * 60 + minutes
    }

    /// "100Mbit/s", "1Gbit/s", "500kbit/s", "50MB/s", "1GB/s" (decimal prefixes, as link rates are given).
    public static func bitsPerSecond(_ text: String) -> Int64? {
        guard let match = text.wholeMatch(of: /([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]?)(bit|B)\/s/), let number = Double(match.1), number > 0 else { return nil }
        let scale: Double = ["": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12][String(match.2)] ?? 1
        let bits = number * scale * (match.3 == "B" ? 8 : 1)
        return bits >= 1 && bits < 1e18 ? Int64(bits) : nil
    }

    /// "20:00-08:00 America/Santiago 100 Mbit/s".
    public var summary: String { "\(starts)-\(ends) \(timezone) \(LinkWindow.rateText(maxBitsPerSecond))" }

    public static func rateText(_ bits: Int64) -> String {
        for (scale, unit) in [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")] where Double(bits) >= scale {
            let value = Double(bits) / scale
            return value == value.rounded() ? "\(Int(value)) \(unit)" : String(format: "%.1f %@", value, unit)
        }
        return "\(bits) bit/s"
    }
}
