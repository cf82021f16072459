/// A PostgreSQL type OID. Only the built-in types this layer encodes or decodes are named; user-defined
/// types (enums, composite types) have OIDs at or above `firstNormalObjectID`.
public struct PostgresDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// Let the server infer the parameter's type from context.
    public static let unspecified = PostgresDataType(0)
    public static let bool = PostgresDataType(16)
    public static let bytea = PostgresDataType(17)
    public static let name = PostgresDataType(19)
    public static let int8 = PostgresDataType(20)
    public static let int2 = PostgresDataType(21)
    public static let int4 = PostgresDataType(23)
    public static let text = PostgresDataType(25)
    public static let oid = PostgresDataType(26)
    public static let json = PostgresDataType(114)
    public static let xml = PostgresDataType(142)
    public static let float4 = PostgresDataType(700)
    public static let float8 = PostgresDataType(701)
    public static let unknown = PostgresDataType(705)
    public static let boolArray = PostgresDataType(1000)
    public static let byteaArray = PostgresDataType(1001)
    public static let int2Array = PostgresDataType(1005)
    public static let int4Array = PostgresDataType(1007)
    public static let textArray = PostgresDataType(1009)
    public static let varcharArray = PostgresDataType(1015)
    public static let int8Array = PostgresDataType(1016)
    public static let float8Array = PostgresDataType(1022)
    public static let bpchar = PostgresDataType(1042)
    public static let varchar = PostgresDataType(1043)
    public static let date = PostgresDataType(1082)
    public static let timestamp = PostgresDataType(1114)
    public static let timestampArray = PostgresDataType(1115)
    public static let timestamptz = PostgresDataType(1184)
    public static let timestamptzArray = PostgresDataType(1185)
    public static let interval = PostgresDataType(1186)
    public static let numeric = PostgresDataType(1700)
    public static let uuid = PostgresDataType(2950)
    public static let uuidArray = PostgresDataType(2951)
    public static let jsonb = PostgresDataType(3802)

    static let firstNormalObjectID: UInt32 = 16384

    /// True for types created in the database (enums, domains, composite types, their arrays).
    public var isUserDefined: Bool { rawValue >= PostgresDataType.firstNormalObjectID }

    public var isTextLike: Bool {
        [.text, .varchar, .bpchar, .name, .unknown, .json, .jsonb, .xml].contains(self)
    }

    /// The element type of a built-in array type; `nil` when this is not a known array type.
    /// User-defined array types (e.g. of enums) map to `.unspecified`.
    public var arrayElement: PostgresDataType? {
        switch self {
        case .boolArray: return .bool
        case .byteaArray: return .bytea
        case .int2Array: return .int2
        case .int4Array: return .int4
        case .int8Array: return .int8
        case .textArray: return .text
        case .varcharArray: return .varchar
        case .float8Array: return .float8
        case .timestampArray: return .timestamp
        case .timestamptzArray: return .timestamptz
        case .uuidArray: return .uuid
        case PostgresDataType(1014): return .bpchar
        case PostgresDataType(199): return .json
        case PostgresDataType(3807): return .jsonb
        default: return isUserDefined ? .unspecified : nil
        }
    }

    public var description: String {
        switch self {
        case .bool: return "boolean"
        case .bytea: return "bytea"
        case .name: return "name"
        case .int8: return "bigint"
        case .int2: return "smallint"
        case .int4: return "integer"
        case .text: return "text"
        case .oid: return "oid"
        case .json: return "json"
        case .jsonb: return "jsonb"
        case .float4: return "real"
        case .float8: return "double precision"
        case .bpchar: return "character"
        case .varchar: return "character varying"
        case .date: return "date"
        case .timestamp: return "timestamp"
        case .timestamptz: return "timestamptz"
        case .interval: return "interval"
        case .numeric: return "numeric"
        case .uuid: return "uuid"
        default:
            if let element = arrayElement, element != .unspecified { return "\(element)[]" }
            return isUserDefined ? "user-defined type (oid \(rawValue))" : "oid \(rawValue)"
        }
    }
}

/// One bound parameter: its type and its value in PostgreSQL's text format (`nil` is SQL NULL).
public struct PostgresBind: Sendable, Equatable {
    public var type: PostgresDataType
    public var text: String?

    public init(type: PostgresDataType, text: String?) {
        self.type = type
        self.text = text
    }
}
