import Foundation
import Postgres

// Conditions that need a person, found from the catalogue each cycle of the alert manager, and the
// messages about them: one when a condition is first seen, one when it clears.

/// A condition that holds now.
public struct AlertCondition: Codable, Sendable, Equatable {
    /// Stable while the condition lasts: the same key is not raised twice.
    public var key: String
    public var kind: AlertKind
    public var summary: String
    public var fix: String?
    public var announceClear: Bool

    public init(key: String, kind: AlertKind, summary: String, fix: String?, announceClear: Bool = true) {
        self.key = key
        self.kind = kind
        self.summary = summary
        self.fix = fix
        self.announceClear = announceClear
    }
}

public enum AlertKind: String, Codable, Sendable, CaseIterable {
    case intervention, staleHeartbeat = "stale_heartbeat", unreachable, overThreshold = "over_threshold"
    case stagingFailed = "staging_failed", damagedCopies = "damaged_copies", suspectRun = "suspect_run"
}

public enum AlertEvent: String, PostgresCodable, Codable, Sendable {
    case raised = "RAISED", cleared = "CLEARED"
}

/// An alert as stored.
public struct Alert: Codable, Sendable, Equatable {
    public var id: Int64
    public var conditionKey: String
    public var kind: String
    public var summary: String
    public var fix: String?
    public var raisedAt: Date
    public var clearedAt: Date?
}

/// A message waiting to be sent to one channel.
public struct AlertMessage: Codable, Sendable, Equatable {
    public var id: Int64
    public var event: AlertEvent
    public var channel: String
    public var attempts: Int
    public var createdAt: Date
    public var alert: Alert
}

/// What one evaluation changed.
public struct AlertChanges: Sendable, Equatable {
    public var raised: [String] = []
    public var cleared: [String] = []
    public var count: Int { raised.count + cleared.count }
}

extension OpsDB {
    /// Every alert condition that holds now. At most `limit` of each kind (the rest are in
    /// `ccat status`).
    public func alertConditions(limit: Int = 200) async throws -> [AlertCondition] {
        var conditions: [AlertCondition] = []
        for row in try await connection.query("""
            SELECT o.id, o.operation_type::text AS type, s.short_name || ':' || l.name AS location, o.attempts, o.error_class, o.last_error
            FROM operation o JOIN data_location l ON l.id = o.data_location_id JOIN site s ON s.id = l.site_id
            WHERE o.state = 'intervention' ORDER BY o.id LIMIT \(limit)
            """) {
            let id: Int64 = try row["id"], type: String = try row["type"], location: String = try row["location"]
            let error: String? = try row["error_class"], last: String? = try row["last_error"]
            conditions.append(AlertCondition(
                key: "intervention:operation:\(id)", kind: .intervention,
                summary: "operation \(id) (\(type) at \(location)) needs a person after \(try row["attempts"] as Int) attempts: \(error ?? "-"): \(Self.firstLine(last))",
                fix: "ccat ops show \(id); once the cause is fixed: ccat ops retry \(id) (or ccat ops cancel \(id))"))
        }
        // Stale as `ccat status` says; a daemon silent for a day is no longer news (its clear is sent).
        for service in try await serviceHealth() where service.stale && service.secondsSinceHeartbeat < 86_400 {
            let (name, instance) = (service.service, service.instance)
            conditions.append(AlertCondition(
                key: "heartbeat:\(name)@\(instance)", kind: .staleHeartbeat,
                summary: "service \(name) of daemon \(instance) has not written its heartbeat for \(Int(service.secondsSinceHeartbeat)) s: the daemon was killed or hangs",
                fix: "look at the daemon on \(instance.split(separator: ":").first.map(String.init) ?? instance) (systemctl status ccat-daemon, its log) and start it again; a running standby has taken over its leader locks"))
        }
        for row in try await connection.query("""
            SELECT s.short_name || ':' || l.name AS location, st.reachable, st.error_message AS last_error,
                   (CASE WHEN st.total_bytes > 0 THEN 100.0 * st.used_bytes / st.total_bytes END)::float8 AS used, l.fill_threshold_percent AS threshold
            FROM data_location l JOIN site s ON s.id = l.site_id JOIN data_location_status st ON st.data_location_id = l.id
            WHERE l.active ORDER BY 1
            """) {
            let location: String = try row["location"], reachable: Bool? = try row["reachable"], used: Double? = try row["used"]
            let threshold: Int = try row["threshold"], error: String? = try row["last_error"]
            if reachable == false {
                conditions.append(AlertCondition(
                    key: "unreachable:\(location)", kind: .unreachable,
                    summary: "location \(location) was unreachable at its last check: \(Self.firstLine(error))",
                    fix: "check the storage behind \(location) (mount, network, credentials); 'ccat status' shows it reachable again after the next MONITORING check"))
            }
            if let used, used > Double(threshold) {
                conditions.append(AlertCondition(
                    key: "over_threshold:\(location)", kind: .overThreshold,
                    summary: "location \(location) is \(Int(used.rounded()))% full, over its threshold of \(threshold)%: new transfers pass it over",
                    fix: "free space at \(location) or raise fill_threshold_percent in the topology ('ccat topology apply'); 'ccat status' shows what it holds"))
            }
        }
        for row in try await connection.query("""
            SELECT public_id::text AS public_id, username, reason FROM staging_request
            WHERE status = 'FAILED' AND updated_at > now() - interval '7 days' ORDER BY id LIMIT \(limit)
            """) {
            let id: String = try row["public_id"], user: String? = try row["username"], reason: String? = try row["reason"]
            conditions.append(AlertCondition(
                key: "staging_failed:\(id)", kind: .stagingFailed,
                summary: "staging request \(id) of \(user ?? "?") failed: \(Self.firstLine(reason))",
                fix: "ccat stage status \(id); 'ccat ops list --state attention' shows the operations behind it", announceClear: false))
        }
        for row in try await connection.query("""
            SELECT s.short_name || ':' || l.name AS location, count(*)::int AS n FROM physical_copy c
            JOIN data_location l ON l.id = c.data_location_id JOIN site s ON s.id = l.site_id
            WHERE c.status IN ('CORRUPTED', 'MISSING') AND l.location_type = 'LONG_TERM_ARCHIVE'
            GROUP BY 1 ORDER BY 1
            """) {
            let location: String = try row["location"], count: Int = try row["n"]
            conditions.append(AlertCondition(
                key: "damaged:\(location)", kind: .damagedCopies,
                summary: "\(count) archive cop\(count == 1 ? "y" : "ies") at \(location) found corrupted or missing; repairs are queued",
                fix: "ccat audit list --location \(location); repairs that found no good copy: ccat ops list --state attention"))
        }
        for row in try await connection.query("""
            SELECT r.id, r.kind::text AS kind, s.short_name || ':' || l.name AS location FROM integrity_run r
            JOIN data_location l ON l.id = r.data_location_id JOIN site s ON s.id = l.site_id
            WHERE r.state = 'SUSPECT' ORDER BY r.id LIMIT \(limit)
            """) {
            let id: Int64 = try row["id"], kind: String = try row["kind"], location: String = try row["location"]
            conditions.append(AlertCondition(
                key: "suspect:\(id)", kind: .suspectRun,
                summary: "\(kind.lowercased()) run \(id) at \(location) found too much gone at once and changed nothing (safety brake)",
                fix: "look at the storage of \(location), then ccat audit show \(id); if the findings are real: ccat audit confirm \(id)"))
        }
        return conditions
    }

    static func firstLine(_ text: String?) -> String {
        guard let text, let line = text.split(whereSeparator: \.isNewline).first else { return "-" }
        return line.count > 300 ? String(line.prefix(300)) + "..." : String(line)
    }

    /// Raises conditions not yet open and clears open alerts whose condition no longer holds,
    /// queueing a message per event for each of `channels`. One evaluator at a time (the alert
    /// manager's leader lock, and a transaction lock for good measure).
    public func applyAlertConditions(_ conditions: [AlertCondition], channels: [String]) async throws -> AlertChanges {
        try await transaction { db in
            _ = try await db.connection.query("SELECT pg_advisory_xact_lock(\(Self.alertLockClass), 0)")
            let open = try await db.connection.query("SELECT id, condition_key, announce_clear FROM alert WHERE cleared_at IS NULL")
            var openKeys: [String: (Int64, Bool)] = [:]
            for row in open { openKeys[try row["condition_key"]] = (try row["id"], try row["announce_clear"]) }
            let holding = Set(conditions.map(\.key))
            var changes = AlertChanges()
            for condition in conditions where openKeys[condition.key] == nil {
                let inserted = try await db.connection.query("""
                    INSERT INTO alert (condition_key, kind, summary, fix, announce_clear)
                    VALUES (\(condition.key), \(condition.kind.rawValue), \(condition.summary), \(condition.fix), \(condition.announceClear))
                    RETURNING id
                    """)
                guard let row = inserted.first else { throw PostgresError(code: .misuse, message: "INSERT INTO alert returned no row", query: nil) }
                let id: Int64 = try row["id"]
                try await db.queueAlertMessages(alert: id, event: .raised, channels: channels)
                changes.raised.append(condition.key)
            }
            for (key, (id, announce)) in openKeys where !holding.contains(key) {
                _ = try await db.connection.execute("UPDATE alert SET cleared_at = now() WHERE id = \(id)")
                if announce { try await db.queueAlertMessages(alert: id, event: .cleared, channels: channels) }
                changes.cleared.append(key)
            }
            return changes
        }
    }

    static let alertLockClass: Int32 = 7264

    func queueAlertMessages(alert: Int64, event: AlertEvent, channels: [String]) async throws {
        for channel in channels {
            _ = try await connection.execute("""
                INSERT INTO alert_message (alert_id, event, channel) VALUES (\(alert), \(event), \(channel)) ON CONFLICT DO NOTHING
                """)
        }
    }

    /// Messages for `channel` due now, oldest first.
    public func dueAlertMessages(channel: String, limit: Int) async throws -> [AlertMessage] {
        try await connection.query("""
            SELECT m.id, m.event, m.channel, m.attempts, m.created_at,
                   a.id AS alert_id, a.condition_key, a.kind, a.summary, a.fix, a.raised_at, a.cleared_at
            FROM alert_message m JOIN alert a ON a.id = m.alert_id
            WHERE m.channel = \(channel) AND m.delivered_at IS NULL AND m.abandoned_at IS NULL AND m.next_attempt_at <= now()
            ORDER BY m.id LIMIT \(limit)
            """).map { row in
            AlertMessage(id: try row["id"], event: try row["event"], channel: try row["channel"], attempts: try row["attempts"],
                         createdAt: try row["created_at"],
                         alert: Alert(id: try row["alert_id"], conditionKey: try row["condition_key"], kind: try row["kind"],
                                      summary: try row["summary"], fix: try row["fix"], raisedAt: try row["raised_at"], clearedAt: try row["cleared_at"]))
        }
    }

    public func markAlertMessagesDelivered(_ ids: [Int64]) async throws {
        _ = try await connection.execute("UPDATE alert_message SET delivered_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY(\(ids))")
    }

    /// Records a failed attempt: tried again after a backoff that doubles from 5 s up to 5
    /// minutes; given up on a day after the message was queued. Returns the ids given up on.
    public func markAlertMessagesFailed(_ ids: [Int64], error: String) async throws -> [Int64] {
        try await connection.query("""
            UPDATE alert_message SET attempts = attempts + 1, last_error = \(error),
                   next_attempt_at = now() + least(300, 5 * power(2, least(attempts, 10))) * interval '1 second',
                   abandoned_at = CASE WHEN created_at < now() - interval '1 day' THEN now() END
            WHERE id = ANY(\(ids)) RETURNING id, abandoned_at IS NOT NULL AS abandoned
            """).compactMap { row in try row["abandoned"] as Bool ? try row["id"] as Int64 : nil }
    }

    /// Alerts open now, newest first.
    public func openAlerts(limit: Int = 100) async throws -> [Alert] {
        try await all(Alert.self, """
            SELECT id, condition_key, kind, summary, fix, raised_at, cleared_at FROM alert WHERE cleared_at IS NULL
            ORDER BY raised_at DESC, id DESC LIMIT \(limit)
            """)
    }

    /// Open alerts per kind.
    public func openAlertCounts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await connection.query("SELECT kind, count(*)::int AS n FROM alert WHERE cleared_at IS NULL GROUP BY kind") {
            counts[try row["kind"]] = try row["n"]
        }
        return counts
    }

    /// Alerts cleared more than `days` ago go, with their messages.
    public func pruneAlerts(olderThanDays days: Int) async throws -> Int {
        try await connection.execute("DELETE FROM alert WHERE cleared_at < now() - \(days) * interval '1 day'")
    }
}
