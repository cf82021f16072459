import Foundation

/// An error from the Postgres layer.
///
/// `description` is safe to log and show: it names what failed, the SQLSTATE, the server's primary
/// message and hint, with any bound parameter value that the server echoed replaced by its `$n`
/// placeholder. `debugDescription` adds the server's DETAIL (which may quote row data) and the SQL
/// text (placeholders only, never the values).
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// The connection could not be established (bad conninfo, unreachable server, authentication).
        public static let connectionFailed = Code(name: "connectionFailed")
        /// The connection broke while a command was in flight; the command's outcome is unknown.
        public static let connectionLost = Code(name: "connectionLost")
        /// The server rejected a command; `sqlState` says why.
        public static let server = Code(name: "server")
        /// A result column could not be decoded into the requested Swift type.
        public static let decoding = Code(name: "decoding")
        /// A parameter value cannot be sent (for example it contains a NUL byte).
        public static let invalidParameter = Code(name: "invalidParameter")
        /// The API was used in a way it does not support (for example a nested transaction).
        public static let misuse = Code(name: "misuse")
        /// The waiting task was cancelled.
        public static let cancelled = Code(name: "cancelled")
    }

    public var code: Code
    public var sqlState: SQLState?
    /// The primary message (server's, or ours for client-side errors), parameter values redacted.
    public var message: String
    public var detail: String?
    public var hint: String?
    public var severity: String?
    public var schemaName: String?
    public var tableName: String?
    public var columnName: String?
    public var constraintName: String?
    /// The SQL text that failed, with `$n` placeholders.
    public var query: String?
    /// The connection broke while COMMIT was in flight: the transaction may or may not have committed.
    public var commitOutcomeUnknown = false

    public init(code: Code, message: String, sqlState: SQLState? = nil, hint: String? = nil, query: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.hint = hint
        self.query = query
    }

    public var description: String {
        var text: String
        switch code {
        case .server:
            text = "\(severity ?? "ERROR") \(sqlState?.description ?? "?"): \(message)"
        case .connectionFailed:
            text = "cannot connect to PostgreSQL: \(message)"
        case .connectionLost:
            text = "lost the connection to PostgreSQL: \(message)"
        default:
            text = message
        }
        if let hint, !hint.isEmpty { text += " (hint: \(hint))" }
        return text
    }

    public var debugDescription: String {
        var text = description
        if let detail { text += "\n  detail: \(detail)" }
        if let constraintName { text += "\n  constraint: \(constraintName)" }
        if let tableName { text += "\n  table: \(schemaName.map { "\($0)." } ?? "")\(tableName)" }
        if let columnName { text += "\n  column: \(columnName)" }
        if let query { text += "\n  query: \(query)" }
        return text
    }

    /// True for failures where retrying later may succeed: lost connections, server restarts,
    /// serialization failures, deadlocks, lock timeouts.
    public var isTransient: Bool {
        switch code {
        case .connectionFailed: return true
        case .connectionLost: return !commitOutcomeUnknown
        case .server:
            guard let sqlState else { return false }
            return sqlState.isTransactionRetryable || sqlState == .lockNotAvailable
                || sqlState.errorClass == "57" || sqlState.errorClass == "08" || sqlState == .tooManyConnections
        default: return false
        }
    }
}

extension PostgresError {
    /// What to do about a connection libpq refused, for the failures an admin setting up a host's
    /// login meets: passwords, TLS verification of the server, client certificates, pg_hba.
    public static func connectionHint(for message: String) -> String? {
        if message.contains("password authentication failed") || message.contains("no password supplied") {
            return "check the password in ~/.pgpass or PGPASSFILE (mode 0600), or give the host a client certificate (sslcert, sslkey)"
        }
        if message.contains("does not match host name") {
            return "the server's certificate does not name the host you connect to: connect with a name or address its subjectAltName lists, or have the site's CA issue the server a certificate for this name"
        }
        if message.contains("certificate verify failed") {
            return "the server's certificate is not signed by the CA in sslrootcert (or has expired): set sslrootcert to the site's CA certificate, and check that the server presents the certificate that CA issued"
        }
        if message.contains("certificate authentication failed") {
            return "the client certificate's common name (CN) must be the login role, unless pg_hba.conf maps it; check sslcert and sslkey"
        }
        if message.contains("requires a valid client certificate") {
            return "this login needs a client certificate: set sslcert and sslkey (key mode 0600) to the certificate the site's CA issued for the role"
        }
        if message.contains("no encryption") {
            return "the server accepts this client over TLS only: add sslmode=verify-full and sslrootcert=<the site's CA> to the connection string"
        }
        if message.contains("No route to host") || message.contains("Network is unreachable") || message.contains("timeout expired") {
            return "the database host does not answer from here: the network link or a firewall is down; the daemon and runners keep retrying, and a DAQ hook run again later registers what was written meanwhile"
        }
        if message.contains("private key file") && message.contains("permissions") {
            return "make the key file readable by its owner only: chmod 0600"
        }
        return nil
    }

    static func decoding(column: String, _ message: String) -> PostgresError {
        var error = PostgresError(code: .decoding, message: "column '\(column)': \(message)")
        error.columnName = column
        return error
    }
}

/// Replace any bound value the server quoted back in a message by its placeholder.
func redact(_ message: String, binds: [PostgresBind]) -> String {
    var result = message
    for (index, bind) in binds.enumerated() {
        guard let value = bind.text, !value.isEmpty else { continue }
        result = result.replacingOccurrences(of: "\"\(value)\"", with: "\"$\(index + 1)\"")
        if value.count >= 6 {
            result = result.replacingOccurrences(of: value, with: "$\(index + 1)")
        }
    }
    return result
}
