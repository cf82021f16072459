import CLibPQ
import Foundation

/// How to reach the server: a libpq conninfo string (`host=... dbname=...`) or URI
/// (`postgresql://user@host/db?sslmode=require`). Anything the string leaves out comes from libpq's
/// own conventions: `PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGSERVICE` with `pg_service.conf`,
/// `PGSSLMODE`, and passwords from `~/.pgpass` or `PGPASSFILE`. An empty string uses those alone.
public struct PostgresConfiguration: Sendable {
    public var conninfo: String
    /// Reported to the server as `fallback_application_name` (a conninfo `application_name` wins).
    public var applicationName: String
    /// How many times a lost connection is re-established before an error reaches the caller.
    public var reconnectAttempts: Int
    /// Pause between reconnection attempts; doubles each time.
    public var reconnectDelay: Duration
    /// Whether the first connection is also tried `reconnectAttempts` times when the server is
    /// unreachable (batch runners that may start while the database restarts); otherwise the
    /// first failure is reported at once, as a command line tool should.
    public var waitForFirstConnection: Bool
    /// Settings of every session (sent as `-c NAME=VALUE` in libpq's `options`, after any the
    /// conninfo gives, so they hold again after a reconnect and never show in the query text).
    /// Names and values are letters, digits, '_' and '.'.
    public var sessionSettings: [String: String] = [:]

    public init(conninfo: String, applicationName: String = "ccat", reconnectAttempts: Int = 4,
                reconnectDelay: Duration = .milliseconds(250), waitForFirstConnection: Bool = false) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.reconnectAttempts = reconnectAttempts
        self.reconnectDelay = reconnectDelay
        self.waitForFirstConnection = waitForFirstConnection
    }
}

/// Parsing and display of conninfo strings through libpq's own parser.
public enum PostgresConnInfo {
    /// The options set explicitly in `conninfo` (keyword, value), in libpq's order.
    /// Throws a one-line error naming the problem for malformed strings.
    public static func parse(_ conninfo: String) throws -> [(keyword: String, value: String)] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            var message = "cannot parse the connection string"
            if let errorMessage {
                message = oneLine(String(cString: errorMessage))
                PQfreemem(errorMessage)
            }
            throw PostgresError(code: .connectionFailed, message: "invalid connection string: \(message)")
        }
        defer { PQconninfoFree(options) }
        var result: [(String, String)] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                result.append((String(cString: keyword), String(cString: value)))
            }
            option += 1
        }
        return result
    }

    /// The conninfo as `keyword=value` pairs with any password removed, safe to print.
    public static func redacted(_ conninfo: String) -> String {
        guard let options = try? parse(conninfo) else { return "<unparsable connection string>" }
        if options.isEmpty { return "(libpq defaults)" }
        return options.map { option in
            option.keyword == "password" ? "password=***" : "\(option.keyword)=\(quote(option.value))"
        }.joined(separator: " ")
    }

    /// The conninfo as `keyword=value` pairs without any password (a URI is rewritten the same
    /// way), and whether it had one. libpq then takes the password from `~/.pgpass`, `PGPASSFILE`
    /// or a service file, which is where secrets belong.
    public static func withoutPassword(_ conninfo: String) throws -> (conninfo: String, hadPassword: Bool) {
        let options = try parse(conninfo)
        let kept = options.filter { $0.keyword != "password" }
        return (kept.map { "\($0.keyword)=\(quote($0.value))" }.joined(separator: " "), kept.count != options.count)
    }

    /// Quotes a value for a keyword/value conninfo string.
    public static func quote(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "'" || $0 == "\\" || $0 == "=" }
        guard needsQuotes else { return value }
        return "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}

/// libpq messages span several lines ("...failed: ...\n\tIs the server running...?"); we report one.
func oneLine(_ message: String) -> String {
    message.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
        .joined(separator: "; ")
}
