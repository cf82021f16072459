import Foundation

/// A Swift value that can be sent to the server as a bound parameter.
public protocol PostgresEncodable: Sendable {
    /// The parameter type sent to the server; `.unspecified` lets the server infer it.
    static var postgresType: PostgresDataType { get }
    /// The value in PostgreSQL's text format. `nil` means SQL NULL.
    var postgresText: String? { get }
}

/// A Swift value that can be decoded from a result column.
public protocol PostgresDecodable {
    /// Decode from a cell. Non-optional types throw on NULL.
    static func decode(from cell: PostgresCell) throws -> Self
}

public typealias PostgresCodable = PostgresEncodable & PostgresDecodable

/// One field of a result row, in text format, with the column's name and type for error messages.
public struct PostgresCell: Sendable {
    public let columnName: String
    public let type: PostgresDataType
    /// The text-format value; `nil` for SQL NULL.
    public let text: String?

    public init(columnName: String, type: PostgresDataType, text: String?) {
        self.columnName = columnName
        self.type = type
        self.text = text
    }

    /// The value, or an error naming the column when it is NULL.
    public func requireText<T>(as swiftType: T.Type) throws -> String {
        guard let text else {
            throw PostgresError.decoding(column: columnName, "is NULL; decode it as \(T.self)? to allow that")
        }
        return text
    }

    public func typeMismatch<T>(_ swiftType: T.Type) -> PostgresError {
        .decoding(column: columnName, "has type \(type); cannot decode it as \(T.self)")
    }

    public func invalidValue<T>(_ swiftType: T.Type, _ why: String = "") -> PostgresError {
        let shown = (text ?? "NULL").count > 64 ? String((text ?? "").prefix(61)) + "..." : (text ?? "NULL")
        return .decoding(column: columnName, "value '\(shown)' is not a valid \(T.self)\(why.isEmpty ? "" : ": \(why)")")
    }

    func expect<T>(_ swiftType: T.Type, _ accepted: Bool) throws -> String {
        guard accepted else { throw typeMismatch(T.self) }
        return try requireText(as: T.self)
    }
}

// MARK: - Integers

private let integerTypes: Set<PostgresDataType> = [.int2, .int4, .int8, .oid]

extension PostgresDecodable where Self: FixedWidthInteger {
    public static func decode(from cell: PostgresCell) throws -> Self {
        let text = try cell.expect(Self.self, integerTypes.contains(cell.type) || cell.type == .unknown)
        guard let value = Self(text) else {
            throw cell.invalidValue(Self.self, "out of range")
        }
        return value
    }
}

extension PostgresEncodable where Self: FixedWidthInteger {
    public var postgresText: String? { String(self) }
}

extension Int: PostgresCodable { public static var postgresType: PostgresDataType { .int8 } }
extension Int64: PostgresCodable { public static var postgresType: PostgresDataType { .int8 } }
extension Int32: PostgresCodable { public static var postgresType: PostgresDataType { .int4 } }
extension Int16: PostgresCodable { public static var postgresType: PostgresDataType { .int2 } }
extension UInt32: PostgresCodable { public static var postgresType: PostgresDataType { .int8 } }

// MARK: - Floating point

extension Double: PostgresCodable {
    public static var postgresType: PostgresDataType { .float8 }
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return description
    }
    public static func decode(from cell: PostgresCell) throws -> Double {
        let accepted: Set<PostgresDataType> = [.float4, .float8, .numeric, .int2, .int4, .int8]
        let text = try cell.expect(Double.self, accepted.contains(cell.type))
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text) else { throw cell.invalidValue(Double.self) }
            return value
        }
    }
}

// MARK: - Bool

extension Bool: PostgresCodable {
    public static var postgresType: PostgresDataType { .bool }
    public var postgresText: String? { self ? "t" : "f" }
    public static func decode(from cell: PostgresCell) throws -> Bool {
        switch try cell.expect(Bool.self, cell.type == .bool) {
        case "t": return true
        case "f": return false
        default: throw cell.invalidValue(Bool.self)
        }
    }
}

// MARK: - Text

extension String: PostgresCodable {
    public static var postgresType: PostgresDataType { .text }
    public var postgresText: String? { self }
    /// Text-like columns and user-defined types (enums) decode as `String`.
    public static func decode(from cell: PostgresCell) throws -> String {
        try cell.expect(String.self, cell.type.isTextLike || cell.type.isUserDefined || cell.type == .unspecified)
    }
}

// MARK: - UUID

extension UUID: PostgresCodable {
    public static var postgresType: PostgresDataType { .uuid }
    public var postgresText: String? { uuidString.lowercased() }
    public static func decode(from cell: PostgresCell) throws -> UUID {
        let text = try cell.expect(UUID.self, cell.type == .uuid || cell.type.isTextLike)
        guard let value = UUID(uuidString: text) else { throw cell.invalidValue(UUID.self) }
        return value
    }
}

// MARK: - bytea

extension Data: PostgresCodable {
    public static var postgresType: PostgresDataType { .bytea }
    public var postgresText: String? {
        var text = "\\x"
        text.reserveCapacity(2 + count * 2)
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(count * 2)
        for byte in self {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0f)])
        }
        text += String(decoding: bytes, as: UTF8.self)
        return text
    }
    public static func decode(from cell: PostgresCell) throws -> Data {
        let text = try cell.expect(Data.self, cell.type == .bytea)
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            throw cell.invalidValue(Data.self, "expected bytea in hex format")
        }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var data = Data(capacity: (utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else {
                throw cell.invalidValue(Data.self, "bad hex digit")
            }
            data.append(high << 4 | low)
            index += 2
        }
        return data
    }
}

// MARK: - Timestamps

extension Date: PostgresCodable {
    public static var postgresType: PostgresDataType { .timestamptz }
    public var postgresText: String? { PostgresTimestamp.format(self) }
    public static func decode(from cell: PostgresCell) throws -> Date {
        let text = try cell.expect(Date.self, [.timestamptz, .timestamp, .date].contains(cell.type))
        guard let date = PostgresTimestamp.parse(text) else {
            throw cell.invalidValue(Date.self, "expected ISO format (the connection sets DateStyle=ISO)")
        }
        return date
    }
}

// MARK: - Optional

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresDataType { Wrapped.postgresType }
    public var postgresText: String? { self.flatMap { $0.postgresText } }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws -> Wrapped? {
        guard cell.text != nil else { return nil }
        return try Wrapped.decode(from: cell)
    }
}

// MARK: - Enums backed by strings (PostgreSQL enum types)

extension PostgresEncodable where Self: RawRepresentable, RawValue == String {
    /// Enums are sent untyped so that the server matches them against the column's enum type.
    public static var postgresType: PostgresDataType { .unspecified }
    public var postgresText: String? { rawValue }
}

extension PostgresDecodable where Self: RawRepresentable, RawValue == String {
    public static func decode(from cell: PostgresCell) throws -> Self {
        let text = try cell.expect(Self.self, cell.type.isUserDefined || cell.type.isTextLike || cell.type == .unspecified)
        guard let value = Self(rawValue: text) else {
            if let all = Self.self as? any CaseIterable.Type {
                let names = (all.allCases as any Collection).map { "\(($0 as! Self).rawValue)" }
                throw cell.invalidValue(Self.self, "allowed: \(names.joined(separator: ", "))")
            }
            throw cell.invalidValue(Self.self)
        }
        return value
    }
}

// MARK: - One-dimensional arrays

extension Array: PostgresEncodable where Element: PostgresEncodable {
    public static var postgresType: PostgresDataType {
        switch Element.postgresType {
        case .bool: return .boolArray
        case .int2: return .int2Array
        case .int4: return .int4Array
        case .int8: return .int8Array
        case .text: return .textArray
        case .float8: return .float8Array
        case .timestamptz: return .timestamptzArray
        case .uuid: return .uuidArray
        case .bytea: return .byteaArray
        default: return .unspecified
        }
    }

    public var postgresText: String? {
        PostgresArrayLiteral.format(map { $0.postgresText })
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    public static func decode(from cell: PostgresCell) throws -> [Element] {
        guard let elementType = cell.type.arrayElement else { throw cell.typeMismatch([Element].self) }
        let text = try cell.requireText(as: [Element].self)
        guard let items = PostgresArrayLiteral.parse(text) else {
            throw cell.invalidValue([Element].self, "not a one-dimensional array literal")
        }
        return try items.enumerated().map { index, item in
            try Element.decode(from: PostgresCell(columnName: "\(cell.columnName)[\(index + 1)]", type: elementType, text: item))
        }
    }
}
