import CLibPQ
import Foundation

/// A notification received on a channel this connection listens to.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// Process id of the server backend that sent it.
    public var senderPID: Int32
}

extension PostgresConnection {
    /// Starts listening on `channel`. The subscription is renewed after a reconnect.
    public func listen(_ channel: String) async throws {
        try await onQueue {
            let handle = try self.ensureConnected()
            _ = try self.handleResult(PQexec(handle, "LISTEN \(quoteIdentifier(channel))"), handle: handle, sql: "LISTEN", binds: [])
            self.addChannel(channel)
        }
    }

    public func unlisten(_ channel: String) async throws {
        try await onQueue {
            let handle = try self.ensureConnected()
            _ = try self.handleResult(PQexec(handle, "UNLISTEN \(quoteIdentifier(channel))"), handle: handle, sql: "UNLISTEN", binds: [])
            self.removeChannel(channel)
        }
    }

    /// Sends a notification (delivered when the surrounding transaction, if any, commits).
    public func notify(_ channel: String, payload: String = "") async throws {
        try await execute("SELECT pg_notify(\(channel), \(payload))")
    }

    /// Waits until at least one notification arrived or `timeout` passed; returns what arrived
    /// (empty on timeout). Returns early, empty, when the task is cancelled. A broken connection
    /// throws `.connectionLost`; the next call reconnects and renews the `LISTEN`s, and callers should
    /// then re-scan for work they may have missed.
    public func waitForNotifications(timeout: Duration) async throws -> [PostgresNotification] {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await onQueue { try self.waitOnQueue(timeout: timeout, cancelled: flag) }
        } onCancel: {
            flag.set()
        }
    }

    private func waitOnQueue(timeout: Duration, cancelled: CancellationFlag) throws -> [PostgresNotification] {
        let handle = try ensureConnected()
        let deadline = ContinuousClock.now + timeout
        while true {
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(code: .connectionLost, message: oneLine(String(cString: PQerrorMessage(handle))))
            }
            var received: [PostgresNotification] = []
            while let notice = PQnotifies(handle) {
                received.append(PostgresNotification(
                    channel: String(cString: notice.pointee.relname),
                    payload: String(cString: notice.pointee.extra),
                    senderPID: notice.pointee.be_pid))
                PQfreemem(notice)
            }
            if !received.isEmpty { return received }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero || cancelled.isSet { return [] }
            // Poll in short slices so that cancellation is noticed promptly.
            let slice = min(remaining, .milliseconds(200))
            let milliseconds = Int32(slice.components.seconds * 1000 + slice.components.attoseconds / 1_000_000_000_000_000)
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, max(milliseconds, 1))
            if ready < 0 && errno != EINTR {
                throw PostgresError(code: .connectionLost, message: "poll() on the connection socket failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// A flag set from a cancellation handler and read on the connection's queue.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
