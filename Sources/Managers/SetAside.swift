import Logging
import OpsDB
import Postgres

/// One item a manager cannot handle never stops its cycle: the item is set aside with its error
/// (`manager_issue`, listed by `ccat status`), left alone for `OpsDB.setAsideSeconds`, then tried
/// again, and cleared once it works. Only the database's own trouble (a lost connection, a
/// cancelled statement) ends the cycle, as it would for every other item too.
struct SetAside {
    let manager: String
    private let issues: [String: Bool]

    static func load(_ db: OpsDB, manager: String) async throws -> SetAside {
        SetAside(manager: manager, issues: try await db.managerIssueItems(manager: manager))
    }

    private init(manager: String, issues: [String: Bool]) {
        self.manager = manager
        self.issues = issues
    }

    /// The items set aside now.
    var items: [String] { issues.filter(\.value).map(\.key) }

    /// Whether `item` failed recently and is skipped.
    func isSetAside(_ item: String) -> Bool { issues[item] == true }

    /// Runs `body` for `item` unless it is set aside; returns what it created (0 when it failed).
    func attempt(_ db: OpsDB, _ item: String, logger: Logger, _ body: () async throws -> Int) async throws -> Int {
        if isSetAside(item) { return 0 }
        let created: Int
        do {
            created = try await body()
        } catch let error as PostgresError where error.isTransient || error.code == .cancelled {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("\(item) set aside: \(error)", metadata: ["manager": "\(manager)"])
            try await db.recordManagerIssue(manager: manager, item: item, error: "\(error)")
            return 0
        }
        if issues[item] != nil { try await db.clearManagerIssue(manager: manager, item: item) }
        return created
    }
}
