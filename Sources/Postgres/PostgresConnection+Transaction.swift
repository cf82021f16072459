import CLibPQ
import Foundation
import Logging

public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension PostgresConnection {
    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws.
    ///
    /// A serialization failure (40001) or deadlock (40P01), at any statement or at COMMIT, rolls back
    /// and runs `body` again, up to `maxAttempts` times in all, with a short randomized pause. So does
    /// a connection lost before COMMIT was sent (the server rolled the transaction back). A connection
    /// lost during COMMIT is reported as `.connectionLost`: whether it committed is unknown.
    ///
    /// `body` must be safe to run more than once and must use only this connection.
    public func transaction<T>(
        isolation: IsolationLevel = .readCommitted,
        maxAttempts: Int = 5,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            try await begin(isolation)
            let value: T
            do {
                value = try await body(self)
            } catch {
                await rollback()
                if attempt < maxAttempts, let pgError = error as? PostgresError, Self.shouldRetry(pgError) {
                    logger.debug("retrying transaction", metadata: ["postgres.attempt": "\(attempt)", "postgres.error": "\(pgError)"])
                    try await backoff(attempt)
                    continue
                }
                throw error
            }
            do {
                try await commit()
                return value
            } catch let error as PostgresError where Self.shouldRetry(error) && attempt < maxAttempts {
                // Rolled back by the server: a late serialization conflict, or the connection
                // broke before COMMIT was sent.
                try await backoff(attempt)
                continue
            }
        }
    }

    /// Whether a transaction opened by `transaction(_:)` is in progress on this connection.
    public func isInTransaction() async throws -> Bool {
        try await onQueue { self.transactionOpen }
    }

    private static func shouldRetry(_ error: PostgresError) -> Bool {
        if error.code == .connectionLost { return !error.commitOutcomeUnknown }
        return error.code == .server && error.sqlState?.isTransactionRetryable == true
    }

    private func begin(_ isolation: IsolationLevel) async throws {
        try await onQueue {
            let handle = try self.ensureConnected()
            guard !self.transactionOpen, PQtransactionStatus(handle) == PQTRANS_IDLE else {
                throw PostgresError(code: .misuse, message: "a transaction is already open on this connection; nested transactions are not supported")
            }
            _ = try self.run(sql: "BEGIN ISOLATION LEVEL \(isolation.rawValue)", binds: [])
            self.transactionOpen = true
        }
    }

    /// COMMIT runs even when the task was cancelled meanwhile: a transaction must never be left open.
    private func commit() async throws {
        try await onQueue {
            defer { self.transactionOpen = false }
            let handle = try self.ensureConnected()
            switch PQtransactionStatus(handle) {
            case PQTRANS_INTRANS:
                break
            case PQTRANS_INERROR:
                _ = try? self.run(sql: "ROLLBACK", binds: [])
                throw PostgresError(code: .misuse, message: "a statement in the transaction failed but the transaction body did not throw (was an error caught?); rolled back")
            default:
                throw PostgresError(code: .misuse, message: "the transaction was ended inside its body; use the transaction's return or throw instead of COMMIT/ROLLBACK")
            }
            do {
                _ = try self.run(sql: "COMMIT", binds: [])
            } catch var error as PostgresError where error.code == .connectionLost {
                error.message += "; the transaction may or may not have committed"
                error.commitOutcomeUnknown = true
                throw error
            }
        }
    }

    private func rollback() async {
        _ = try? await onQueue {
            defer { self.transactionOpen = false }
            guard self.transactionStatus == PQTRANS_INTRANS || self.transactionStatus == PQTRANS_INERROR else { return }
            _ = try self.run(sql: "ROLLBACK", binds: [])
        }
    }

    private func backoff(_ attempt: Int) async throws {
        let base = 10 * (1 << min(attempt, 6))
        try await Task.sleep(for: .milliseconds(Int.random(in: base / 2...base)))
    }
}
