import Logging
import OpsDB

/// What every manager cycle works with: the database, the locations and sites (loaded once per
/// cycle), the manager's items set aside, and its logger.
struct CycleContext {
    let db: OpsDB
    let places: Places
    let setAside: SetAside
    let logger: Logger

    static func load(_ db: OpsDB, manager: String, logger: Logger) async throws -> CycleContext {
        CycleContext(db: db, places: try await Places.load(db), setAside: try await SetAside.load(db, manager: manager), logger: logger)
    }

    /// Runs `body` for `item` unless it is set aside (see `SetAside.attempt`).
    func attempt(_ item: String, _ body: () async throws -> Int) async throws -> Int {
        try await setAside.attempt(db, item, logger: logger, body)
    }

    /// The second half of every stage: each target that has no live operation (a new one, or one
    /// whose operation was never created because the daemon stopped between the two steps) gets
    /// one. `plan` loads what the operation needs, or returns nil when the target is gone; each
    /// target is an item of its own for `setAside`, named by `item`. Returns how many were created.
    func scheduleEach<Row>(_ rows: [Row], item: (Row) -> String, plan: (Row) async throws -> OperationPlan?) async throws -> Int {
        var created = 0
        for row in rows {
            created += try await attempt(item(row)) {
                guard let operation = try await plan(row), try await places.schedule(db, operation) == 1 else { return 0 }
                logger.debug("operation scheduled", metadata: ["type": "\(operation.type.rawValue)", "target": "\(operation.target)"])
                return 1
            }
        }
        return created
    }
}

/// The operation a manager wants for one target: its stage, the location whose queue runs it,
/// where it writes (when that is elsewhere), its size for job packing, and its priority.
struct OperationPlan {
    var type: OperationType
    var locationID: Int64
    var target: OperationTarget
    var targetLocationID: Int64?
    var sizeHintBytes: Int64
    var priority: Int

    init(_ type: OperationType, at locationID: Int64, target: OperationTarget, targetLocationID: Int64? = nil, sizeHintBytes: Int64 = 0,
         priority: Int = 0) {
        self.type = type
        self.locationID = locationID
        self.target = target
        self.targetLocationID = targetLocationID
        self.sizeHintBytes = sizeHintBytes
        self.priority = priority
    }
}
