import Foundation
import Postgres

// Items a manager set aside (`manager_issue`), shown by `ccat status`.

/// An item a manager could not handle, and why (`manager_issue`).
public struct ManagerIssue: Codable, Sendable, Equatable {
    public var manager: String
    public var item: String
    public var error: String
    public var failures: Int
    public var firstSeenAt: Date
    public var lastSeenAt: Date
}

extension OpsDB {
    /// How long an item that failed is left alone before the manager tries it again.
    public static let setAsideSeconds = 600

    /// Records that `item` failed; its failures are counted.
    public func recordManagerIssue(manager: String, item: String, error: String) async throws {
        try await connection.execute("""
            INSERT INTO manager_issue (manager, item, error) VALUES (\(manager), \(item), \(String(error.prefix(2000))))
            ON CONFLICT (manager, item) DO UPDATE SET error = excluded.error, failures = manager_issue.failures + 1, last_seen_at = now()
            """)
    }

    /// `item` worked: it is no longer an issue.
    public func clearManagerIssue(manager: String, item: String) async throws {
        try await connection.execute("DELETE FROM manager_issue WHERE manager = \(manager) AND item = \(item)")
    }

    /// The items `manager` has issues with, each with whether it failed within `setAsideSeconds`
    /// (the manager skips those; the others it tries again, and clears when they work).
    public func managerIssueItems(manager: String) async throws -> [String: Bool] {
        Dictionary(uniqueKeysWithValues: try await connection.query("""
            SELECT item, last_seen_at > now() - make_interval(secs => \(Self.setAsideSeconds)) AS recent
            FROM manager_issue WHERE manager = \(manager)
            """).map { (try $0["item"] as String, try $0["recent"] as Bool) })
    }

    public func managerIssues(limit: Int = 100) async throws -> [ManagerIssue] {
        try await connection.query("""
            SELECT manager, item, error, failures, first_seen_at, last_seen_at FROM manager_issue
            ORDER BY last_seen_at DESC LIMIT \(limit)
            """).map {
            ManagerIssue(manager: try $0["manager"], item: try $0["item"], error: try $0["error"], failures: try $0["failures"],
                         firstSeenAt: try $0["first_seen_at"], lastSeenAt: try $0["last_seen_at"])
        }
    }
}
