import Foundation
import Logging
import OpsDB
import Postgres
import ServiceLifecycle
import Synchronization

/// One manager's work: a cycle scans the database, creates records and operations, and returns
/// how many things it created or changed (0 when there was nothing to do).
public protocol ManagerCycle: Sendable {
    /// The service name in `service_heartbeat` and the key of its leader lock.
    var name: String { get }
    func cycle(_ db: OpsDB, logger: Logger) async throws -> Int
}

/// Runs one manager as a service: its own database connection, leader election with a session
/// advisory lock (a second daemon waits as a hot standby and takes over when the leader's
/// connection ends), a heartbeat row in `service_heartbeat`, and a loop that wakes on NOTIFY
/// `ccat_work` or after `interval`. The unique indexes on live operations make double submission
/// impossible even if two leaders ever overlapped.
public final class ManagerService: Service, Sendable {
    public let manager: any ManagerCycle
    let conninfo: String
    let interval: Duration
    let instance: String
    let logger: Logger
    let board: LeadershipBoard?

    /// Advisory-lock class for manager leadership (the second key is `hashtext(name)`).
    static let lockClass: Int32 = 7262

    public init(_ manager: any ManagerCycle, conninfo: String, interval: Duration, instance: String, logger: Logger,
                board: LeadershipBoard? = nil) {
        self.manager = manager
        self.board = board
        self.conninfo = conninfo
        self.interval = interval
        self.instance = instance
        var logger = logger
        logger[metadataKey: "service"] = "\(manager.name)"
        self.logger = logger
    }

    public func run() async throws {
        var connection: PostgresConnection?
        var leader = false
        var status = "STARTING"
        // Cycles run as leader, reported in the heartbeat's details.
        var cyclesRun = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var worked = 0
            do {
                if connection == nil {
                    connection = try await PostgresConnection.connect(
                        PostgresConfiguration(conninfo: conninfo, applicationName: "ccat daemon \(manager.name)"), logger: logger)
                    try await connection!.listen(OpsDB.workChannel)
                    leader = false
                }
                let db = OpsDB(connection!)
                if !leader {
                    leader = try await db.tryLeadership(lockClass: Self.lockClass, name: manager.name)
                    if leader { logger.info("became leader") }
                    board?.set(manager.name, leader: leader)
                }
                try await db.recordHeartbeat(service: manager.name, instance: instance, status: status, leader: leader,
                                             details: ["cycles": String(cyclesRun), "interval_s": String(interval.components.seconds)])
                status = "RUNNING"
                if leader {
                    worked = try await manager.cycle(db, logger: logger)
                    cyclesRun += 1
                    if worked > 0 {
                        logger.info("cycle done", metadata: ["changed": "\(worked)"])
                        try await db.notifyWork(manager.name)
                    }
                }
            } catch let error as PostgresError where error.code == .connectionLost || error.code == .connectionFailed {
                logger.warning("database unavailable, retrying", metadata: ["error": "\(error)"])
                leader = false
                board?.set(manager.name, leader: false)
                if let lost = connection { await lost.close() }
                connection = nil
            } catch is CancellationError {
                break
            } catch let error as PostgresError where Task.isCancelled && (error.code == .cancelled || error.sqlState == .queryCanceled) {
                break
            } catch {
                logger.error("cycle failed", metadata: ["error": "\(error)"])
            }
            // More work may be waiting behind a bounded batch: go again at once. Otherwise sleep
            // until NOTIFY or the interval.
            if worked > 0 { continue }
            do {
                if let connection {
                    _ = try await cancelWhenGracefulShutdown { try await connection.waitForNotifications(timeout: self.interval) }
                } else {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
                }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("waiting for work failed", metadata: ["error": "\(error)"])
                leader = false
                board?.set(manager.name, leader: false)
                connection = nil
            }
        }
        // Leaving: the row says so, and closing the session releases the leader lock at once, so
        // a standby takes over without waiting for a timeout. The row is written even when a stop
        // that ran out of time cancelled this task (a cancelled task's statements are refused), in
        // a task of its own. A graceful stop waits for it up to `stopRecordLimit` (a busy database
        // is no reason to leave the row at RUNNING); once cancelled, at most
        // `cancelledStopRecordLimit`: the service group ends the process with a crash once its
        // cancellation bound (5 s) has passed.
        if let connection {
            let db = OpsDB(connection)
            let (name, instance) = (manager.name, instance)
            let written = await Self.detached(within: Self.stopRecordLimit, cancelled: Self.cancelledStopRecordLimit) {
                try await db.recordHeartbeat(service: name, instance: instance, status: "STOPPED", leader: false, details: nil)
            }
            switch written {
            case .success?:
                await connection.close()
            case .failure(let error)?:
                logger.warning("could not record the stop in service_heartbeat", metadata: ["error": "\(error)"])
                await connection.close()
            case nil:
                // Still waiting on the database: closing would wait behind it. The session ends
                // with the process.
                logger.warning("could not record the stop in service_heartbeat in time")
            }
        }
        logger.info("stopped")
    }

    static let stopRecordLimit: Duration = .seconds(15)
    static let cancelledStopRecordLimit: Duration = .seconds(2)

    /// Runs `work` in a task of its own, which the caller's cancellation does not reach, and
    /// waits for it at most `limit`, or `cancelled` from the moment the caller is cancelled
    /// (already cancelled: from the start): nil when that passed first (the work goes on
    /// unobserved).
    static func detached<T: Sendable>(within limit: Duration, cancelled: Duration,
                                      _ work: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
        let outcome = ResumeOnce<Result<T, any Error>?>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>?, Never>) in
                outcome.attach(continuation)
                Task {
                    do { outcome.resume(.success(try await work())) } catch { outcome.resume(.failure(error)) }
                }
                Task {
                    try? await Task.sleep(for: limit)
                    outcome.resume(nil)
                }
            }
        } onCancel: {
            Task {
                try? await Task.sleep(for: cancelled)
                outcome.resume(nil)
            }
        }
    }
}

/// A continuation resumed by whichever answer comes first; an answer that comes before the
/// continuation is attached is kept for it.
final class ResumeOnce<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, Never>?
        var early: Value?
        var done = false
    }
    private let state = Mutex(State())

    func attach(_ continuation: CheckedContinuation<Value, Never>) {
        let early: Value? = state.withLock { state in
            guard let value = state.early else { state.continuation = continuation; return nil }
            state.early = nil
            return value
        }
        if let early { continuation.resume(returning: early) }
    }

    func resume(_ value: Value) {
        let waiting: CheckedContinuation<Value, Never>? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            guard let continuation = state.continuation else { state.early = value; return nil }
            state.continuation = nil
            return continuation
        }
        waiting?.resume(returning: value)
    }
}
