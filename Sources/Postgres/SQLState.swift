/// A five-character SQLSTATE code as reported by the server (see the PostgreSQL manual, appendix A).
///
/// Pattern-match it against the named constants:
/// ```swift
/// switch error.sqlState {
/// case .uniqueViolation?: ...
/// case .serializationFailure?, .deadlockDetected?: ...
/// default: ...
/// }
/// ```
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The two-character class, e.g. `"23"` for integrity constraint violations.
    public var errorClass: String { String(rawValue.prefix(2)) }

    public var description: String {
        if let name = SQLState.names[rawValue] { return "\(rawValue) (\(name))" }
        return rawValue
    }

    public static let uniqueViolation = SQLState("23505")
    public static let foreignKeyViolation = SQLState("23503")
    public static let notNullViolation = SQLState("23502")
    public static let checkViolation = SQLState("23514")
    public static let exclusionViolation = SQLState("23P01")
    public static let restrictViolation = SQLState("23001")
    public static let serializationFailure = SQLState("40001")
    public static let deadlockDetected = SQLState("40P01")
    public static let lockNotAvailable = SQLState("55P03")
    public static let queryCanceled = SQLState("57014")
    public static let adminShutdown = SQLState("57P01")
    public static let crashShutdown = SQLState("57P02")
    public static let cannotConnectNow = SQLState("57P03")
    public static let undefinedTable = SQLState("42P01")
    public static let undefinedColumn = SQLState("42703")
    public static let undefinedObject = SQLState("42704")
    public static let duplicateObject = SQLState("42710")
    public static let duplicateDatabase = SQLState("42P04")
    public static let insufficientPrivilege = SQLState("42501")
    public static let syntaxError = SQLState("42601")
    public static let invalidTextRepresentation = SQLState("22P02")
    public static let stringDataRightTruncation = SQLState("22001")
    public static let numericValueOutOfRange = SQLState("22003")
    public static let invalidPassword = SQLState("28P01")
    public static let invalidAuthorizationSpecification = SQLState("28000")
    public static let invalidCatalogName = SQLState("3D000")
    public static let tooManyConnections = SQLState("53300")
    public static let raiseException = SQLState("P0001")

    static let names: [String: String] = [
        "23505": "unique_violation", "23503": "foreign_key_violation", "23502": "not_null_violation",
        "23514": "check_violation", "23P01": "exclusion_violation", "23001": "restrict_violation",
        "40001": "serialization_failure", "40P01": "deadlock_detected", "55P03": "lock_not_available",
        "57014": "query_canceled", "57P01": "admin_shutdown", "57P02": "crash_shutdown",
        "57P03": "cannot_connect_now", "42P01": "undefined_table", "42703": "undefined_column",
        "42704": "undefined_object", "42710": "duplicate_object", "42P04": "duplicate_database",
        "42501": "insufficient_privilege", "42601": "syntax_error", "22P02": "invalid_text_representation",
        "22001": "string_data_right_truncation", "22003": "numeric_value_out_of_range",
        "28P01": "invalid_password", "28000": "invalid_authorization_specification",
        "3D000": "invalid_catalog_name", "53300": "too_many_connections", "P0001": "raise_exception",
    ]

    /// Errors after which re-running the whole transaction may succeed.
    public var isTransactionRetryable: Bool {
        self == .serializationFailure || self == .deadlockDetected
    }
}
