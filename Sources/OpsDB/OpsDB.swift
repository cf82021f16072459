import Foundation
import Postgres

/// Typed access to the ops database over one connection. Query functions are grouped by table in
/// `OpsDB+<Table>.swift`; later layers (topology, scheduling, runner, managers) build on them.
public struct OpsDB: Sendable {
    public let connection: PostgresConnection

    public init(_ connection: PostgresConnection) {
        self.connection = connection
    }

    /// Runs `body` in one transaction (see `PostgresConnection.transaction`). Inside a transaction
    /// that is already open, `body` simply joins it, so query functions compose.
    public func transaction<T>(isolation: IsolationLevel = .readCommitted, _ body: (OpsDB) async throws -> T) async throws -> T {
        if try await connection.isInTransaction() { return try await body(self) }
        return try await connection.transaction(isolation: isolation) { try await body(OpsDB($0)) }
    }

    func one<T: Decodable>(_ type: T.Type, _ query: PostgresQuery) async throws -> T {
        guard let row = try await connection.query(query).first else {
            throw PostgresError(code: .misuse, message: "expected one \(T.self) row, got none", query: query.sql)
        }
        return try row.decode(T.self)
    }

    func optional<T: Decodable>(_ type: T.Type, _ query: PostgresQuery) async throws -> T? {
        try await connection.query(query).singleRow()?.decode(T.self)
    }

    func all<T: Decodable>(_ type: T.Type, _ query: PostgresQuery) async throws -> [T] {
        try await connection.query(query).decode(T.self)
    }
}

/// A record that was looked up by a key the caller gave and is not there.
public struct NotFoundError: Error, CustomStringConvertible, Sendable {
    public var entity: String
    public var key: String
    public var description: String { "no \(entity) \(key)" }
}
