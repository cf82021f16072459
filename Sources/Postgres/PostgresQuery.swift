/// A SQL statement whose interpolated values become bound parameters.
///
/// ```swift
/// let rows = try await db.query("SELECT id FROM site WHERE short_name = \(name)")
/// // sent as: SELECT id FROM site WHERE short_name = $1   with $1 = name
/// ```
///
/// There is deliberately no way to splice a value into the SQL text. Identifiers (schema or channel
/// names) are interpolated with `\(identifier: name)`, which quotes them; fragments built the same way
/// compose with `\(fragment)`, their parameters renumbered.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    enum Part: Sendable {
        case sql(String)
        case bind(PostgresBind)
    }

    var parts: [Part]

    public init(stringLiteral value: String) {
        parts = [.sql(value)]
    }

    public init(stringInterpolation: StringInterpolation) {
        parts = stringInterpolation.parts
    }

    /// The SQL text with `$1`, `$2`, ... placeholders.
    public var sql: String { render().sql }

    /// The bound parameters in placeholder order.
    public var binds: [PostgresBind] { render().binds }

    /// Shows the SQL text only; values are never part of a query's description.
    public var description: String { sql }

    func render() -> (sql: String, binds: [PostgresBind]) {
        var sql = ""
        var binds: [PostgresBind] = []
        for part in parts {
            switch part {
            case .sql(let text): sql += text
            case .bind(let bind):
                binds.append(bind)
                sql += "$\(binds.count)"
            }
        }
        return (sql, binds)
    }

    /// Joins fragments with a literal separator, e.g. to build a list of conditions.
    public static func joined(_ fragments: [PostgresQuery], separator: String) -> PostgresQuery {
        var result = PostgresQuery(stringLiteral: "")
        result.parts = []
        for (index, fragment) in fragments.enumerated() {
            if index > 0 { result.parts.append(.sql(separator)) }
            result.parts.append(contentsOf: fragment.parts)
        }
        return result
    }

    public static func + (lhs: PostgresQuery, rhs: PostgresQuery) -> PostgresQuery {
        var result = lhs
        result.parts.append(contentsOf: rhs.parts)
        return result
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var parts: [Part] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            parts.reserveCapacity(interpolationCount * 2 + 1)
        }

        public mutating func appendLiteral(_ literal: String) {
            parts.append(.sql(literal))
        }

        /// A value: becomes a `$n` parameter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            parts.append(.bind(PostgresBind(type: Value.postgresType, text: value.postgresText)))
        }

        /// An optional value: `nil` becomes SQL NULL.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            parts.append(.bind(PostgresBind(type: Value.postgresType, text: value?.postgresText)))
        }

        /// An identifier (table, schema, role, channel): quoted, embedded quotes doubled.
        public mutating func appendInterpolation(identifier: String) {
            parts.append(.sql(quoteIdentifier(identifier)))
        }

        /// A fragment built the same way; its parameters are renumbered.
        public mutating func appendInterpolation(_ fragment: PostgresQuery) {
            parts.append(contentsOf: fragment.parts)
        }
    }
}

/// Quotes an SQL identifier: `my "table"` becomes `"my ""table"""`.
public func quoteIdentifier(_ identifier: String) -> String {
    "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
