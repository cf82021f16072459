import Foundation
import Postgres

/// Bytes moved over one link (origin -> destination location) by one kind of work in a period.
public struct LinkThroughput: Codable, Sendable, Equatable {
    public var operationType: OperationType
    /// `site:location`; nil when not known (a repair that failed before choosing its source).
    public var origin: String?
    public var destination: String
    public var attempts: Int64
    public var failures: Int64
    public var bytes: Int64
    /// Seconds the successful attempts took.
    public var seconds: Double

    public init(operationType: OperationType, origin: String?, destination: String, attempts: Int64, failures: Int64, bytes: Int64,
                seconds: Double) {
        self.operationType = operationType
        self.origin = origin
        self.destination = destination
        self.attempts = attempts
        self.failures = failures
        self.bytes = bytes
        self.seconds = seconds
    }

    /// Bytes per second while moving (nil before anything moved).
    public var bytesPerSecond: Double? { seconds > 0 ? Double(bytes) / seconds : nil }
}

extension OpsDB {
    /// The operation types whose attempts move bytes between locations.
    public static let transferTypes: [OperationType] = [.dataTransfer, .longTermArchiveTransfer, .staging, .archiveRepair]

    /// Records one attempt of a transfer-like operation: where from and to (from the record it
    /// works on; a repair names its source in its result), by which route and method, bytes,
    /// seconds and outcome. Other operation types record nothing.
    public func recordTransferAttempt(_ operation: OperationRecord, succeeded: Bool, bytes: Int64, seconds: Double,
                                      errorClass: String?, logPath: String?) async throws {
        guard Self.transferTypes.contains(operation.operationType) else { return }
        try await connection.execute("""
            INSERT INTO transfer_attempt (operation_id, operation_type, origin_location_id, destination_location_id, route_id, method,
                                          bytes, seconds, succeeded, error_class, log_path)
            SELECT o.id, o.operation_type,
                   coalesce(t.origin_location_id, a.origin_location_id, j.origin_location_id, nullif((o.result->>'source_location_id')::bigint, -1)),
                   coalesce(t.destination_location_id, a.destination_location_id, j.destination_location_id, o.data_location_id),
                   t.route_id,
                   coalesce(t.method::text, CASE WHEN d.storage_type = 'S3' THEN 'S3' ELSE 'COPY' END),
                   \(max(0, bytes)), \(max(0, seconds)), \(succeeded), \(errorClass), \(logPath)
            FROM operation o
            LEFT JOIN data_transfer t ON t.id = o.data_transfer_id
            LEFT JOIN long_term_archive_transfer a ON a.id = o.long_term_archive_transfer_id
            LEFT JOIN staging_job j ON j.id = o.staging_job_id
            LEFT JOIN data_location d ON d.id = o.data_location_id
            WHERE o.id = \(operation.id)
            """)
    }

    /// Folds attempts that finished more than `keepDays` days ago into daily totals per link, in
    /// one transaction; returns how many attempts were folded.
    @discardableResult
    public func foldTransferAttempts(olderThanDays keepDays: Int) async throws -> Int {
        try await transaction { db in
            let folded: Int = try await db.connection.query("""
                WITH old AS (
                    DELETE FROM transfer_attempt WHERE finished_at < now() - \(keepDays) * interval '1 day'
                    RETURNING finished_at, operation_type, origin_location_id, destination_location_id, method, bytes, seconds, succeeded
                ), totals AS (
                    SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, operation_type, coalesce(origin_location_id, 0) AS origin,
                           destination_location_id, coalesce(method, '') AS method, count(*) AS attempts,
                           count(*) FILTER (WHERE NOT succeeded) AS failures, sum(bytes) FILTER (WHERE succeeded) AS bytes,
                           sum(seconds) FILTER (WHERE succeeded) AS seconds
                    FROM old GROUP BY 1, 2, 3, 4, 5
                ), written AS (
                    INSERT INTO transfer_daily (day, operation_type, origin_location_id, destination_location_id, method,
                                                attempts, failures, bytes, seconds)
                    SELECT day, operation_type, origin, destination_location_id, method, attempts, failures,
                           coalesce(bytes, 0), coalesce(seconds, 0) FROM totals
                    ON CONFLICT (day, operation_type, origin_location_id, destination_location_id, method) DO UPDATE SET
                        attempts = transfer_daily.attempts + excluded.attempts, failures = transfer_daily.failures + excluded.failures,
                        bytes = transfer_daily.bytes + excluded.bytes, seconds = transfer_daily.seconds + excluded.seconds
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM old)::int AS n, (SELECT count(*) FROM written)::int AS w
                """)[0]["n"]
            return folded
        }
    }

    /// Throughput per link and kind of work since `since`: attempts still kept, plus the daily
    /// totals of whole days (UTC) on or after `since`.
    public func linkThroughput(since: Date) async throws -> [LinkThroughput] {
        try await all(LinkThroughput.self, """
            WITH rows AS (
                SELECT operation_type, origin_location_id AS origin, destination_location_id AS destination,
                       1::bigint AS attempts, (NOT succeeded)::int::bigint AS failures,
                       CASE WHEN succeeded THEN bytes ELSE 0 END AS bytes, CASE WHEN succeeded THEN seconds ELSE 0 END AS seconds
                FROM transfer_attempt WHERE finished_at >= \(since)
                UNION ALL
                SELECT operation_type, nullif(origin_location_id, 0), destination_location_id, attempts, failures, bytes, seconds
                FROM transfer_daily WHERE day >= (\(since)::timestamptz AT TIME ZONE 'UTC')::date
            )
            SELECT r.operation_type, os.short_name || ':' || ol.name AS origin, ds.short_name || ':' || dl.name AS destination,
                   sum(r.attempts)::bigint AS attempts, sum(r.failures)::bigint AS failures, sum(r.bytes)::bigint AS bytes,
                   sum(r.seconds)::float8 AS seconds
            FROM rows r
            JOIN data_location dl ON dl.id = r.destination JOIN site ds ON ds.id = dl.site_id
            LEFT JOIN data_location ol ON ol.id = r.origin LEFT JOIN site os ON os.id = ol.site_id
            GROUP BY 1, 2, 3 ORDER BY 3, 2, 1
            """)
    }
}
