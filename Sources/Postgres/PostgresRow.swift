import CLibPQ

/// Owns a `PGresult`; immutable after creation, so it is safe to read from any thread.
final class PostgresResultStorage: @unchecked Sendable {
    let result: OpaquePointer
    let columns: [String]
    let types: [PostgresDataType]
    let columnIndex: [String: Int]
    let rowCount: Int

    /// libpq may call the connection's notice receiver through this result, so its context lives as long.
    private let noticeContext: AnyObject

    init(_ result: OpaquePointer, retaining noticeContext: AnyObject) {
        self.result = result
        self.noticeContext = noticeContext
        let count = Int(PQnfields(result))
        var columns: [String] = []
        var types: [PostgresDataType] = []
        var index: [String: Int] = [:]
        for column in 0..<count {
            let name = String(cString: PQfname(result, Int32(column)))
            columns.append(name)
            types.append(PostgresDataType(PQftype(result, Int32(column))))
            if index[name] == nil { index[name] = column }
        }
        self.columns = columns
        self.types = types
        self.columnIndex = index
        self.rowCount = Int(PQntuples(result))
    }

    deinit { PQclear(result) }

    func cell(row: Int, column: Int) -> PostgresCell {
        precondition(row >= 0 && row < rowCount && column >= 0 && column < columns.count, "row \(row), column \(column) out of range")
        let text: String?
        if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
            text = nil
        } else {
            text = String(cString: PQgetvalue(result, Int32(row), Int32(column)))
        }
        return PostgresCell(columnName: columns[column], type: types[column], text: text)
    }
}

/// The rows a statement returned, plus the affected-row count of a command.
public struct PostgresRows: Sendable, RandomAccessCollection {
    let storage: PostgresResultStorage?
    /// Rows affected by INSERT/UPDATE/DELETE (or returned by SELECT).
    public let affectedRows: Int

    init(storage: PostgresResultStorage?, affectedRows: Int) {
        self.storage = storage
        self.affectedRows = affectedRows
    }

    public var columns: [String] { storage?.columns ?? [] }
    public var startIndex: Int { 0 }
    public var endIndex: Int { storage?.rowCount ?? 0 }
    public subscript(position: Int) -> PostgresRow { PostgresRow(storage: storage!, index: position) }

    /// Decode every row into `T` (see `PostgresRow.decode(_:)`).
    public func decode<T: Decodable>(_ type: T.Type) throws -> [T] {
        try map { try $0.decode(T.self) }
    }

    /// The single row, or `nil` when there is none; throws if there are several.
    public func singleRow() throws -> PostgresRow? {
        guard count <= 1 else {
            throw PostgresError(code: .misuse, message: "expected at most one row, got \(count)")
        }
        return first
    }
}

/// One row. Read columns by name: `try row.decode(Int.self, column: "id")`, or the whole row into a
/// `Decodable` type whose camelCase properties match snake_case columns.
public struct PostgresRow: Sendable {
    let storage: PostgresResultStorage
    let index: Int

    public var columns: [String] { storage.columns }

    public func cell(_ column: String) throws -> PostgresCell {
        guard let position = storage.columnIndex[column] else {
            throw PostgresError.decoding(
                column: column, "not in the result (columns: \(storage.columns.joined(separator: ", ")))")
        }
        return storage.cell(row: index, column: position)
    }

    public func cell(at position: Int) -> PostgresCell {
        storage.cell(row: index, column: position)
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type, column: String) throws -> T {
        try T.decode(from: cell(column))
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type, at position: Int) throws -> T {
        guard position >= 0 && position < storage.columns.count else {
            throw PostgresError.decoding(column: "#\(position)", "the result has only \(storage.columns.count) columns")
        }
        return try T.decode(from: cell(at: position))
    }

    public subscript<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) -> T {
        get throws { try decode(T.self, column: column) }
    }

    /// Decode the whole row. Property `sizeBytes` reads column `size_bytes`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try T(from: RowDecoder(row: self))
        } catch let error as PostgresError {
            throw error
        } catch let error as DecodingError {
            throw PostgresError(code: .decoding, message: "cannot decode row as \(T.self): \(describe(error))")
        }
    }
}

private func describe(_ error: DecodingError) -> String {
    switch error {
    case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context), .valueNotFound(_, let context):
        let path = context.codingPath.map { snakeCase($0.stringValue) }.joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "column '\(path)': \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

/// `sizeBytes` -> `size_bytes`, `dataLocationID` -> `data_location_id`.
func snakeCase(_ name: String) -> String {
    var result = ""
    let chars = Array(name)
    for (i, char) in chars.enumerated() {
        if char.isUppercase {
            let previousIsLower = i > 0 && (chars[i - 1].isLowercase || chars[i - 1].isNumber)
            let nextIsLower = i + 1 < chars.count && chars[i + 1].isLowercase
            let previousIsUpper = i > 0 && chars[i - 1].isUppercase
            if i > 0 && (previousIsLower || (previousIsUpper && nextIsLower)) { result += "_" }
            result += char.lowercased()
        } else {
            result.append(char)
        }
    }
    return result
}

private struct RowDecoder: Decoder {
    let row: PostgresRow
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowContainer<Key>(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw PostgresError(code: .misuse, message: "rows decode into keyed types (structs), not arrays")
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        guard row.columns.count == 1 else {
            throw PostgresError(code: .misuse, message: "a single value needs a one-column result, got \(row.columns.count)")
        }
        return CellDecoder(cell: row.cell(at: 0), codingPath: [])
    }
}

private struct RowContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: PostgresRow
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { row.columns.compactMap { Key(stringValue: $0) } }

    func column(_ key: Key) -> String { snakeCase(key.stringValue) }

    func contains(_ key: Key) -> Bool { row.storage.columnIndex[column(key)] != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try row.cell(column(key)).text == nil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let cell = try row.cell(column(key))
        if let decodable = T.self as? any PostgresDecodable.Type {
            return try decodable.decode(from: cell) as! T
        }
        return try T(from: CellDecoder(cell: cell, codingPath: [key]))
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        let cell = try row.cell(column(key))
        if cell.text == nil { return nil }
        return try decode(T.self, forKey: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw PostgresError(code: .misuse, message: "column '\(column(key))': nested containers are not supported")
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw PostgresError(code: .misuse, message: "column '\(column(key))': decode arrays as [Element] with PostgresDecodable elements")
    }

    func superDecoder() throws -> any Decoder { RowDecoder(row: row) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row) }
}

/// Decodes one cell for types that are `Decodable` but not `PostgresDecodable`
/// (e.g. a `RawRepresentable` enum that only declared `Decodable`).
private struct CellDecoder: Decoder, SingleValueDecodingContainer {
    let cell: PostgresCell
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw cell.typeMismatch(type)
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw cell.typeMismatch([Any].self) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { cell.text == nil }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let decodable = T.self as? any PostgresDecodable.Type {
            return try decodable.decode(from: cell) as! T
        }
        return try T(from: self)
    }
    func decode(_ type: String.Type) throws -> String { try String.decode(from: cell) }
    func decode(_ type: Bool.Type) throws -> Bool { try Bool.decode(from: cell) }
    func decode(_ type: Double.Type) throws -> Double { try Double.decode(from: cell) }
    func decode(_ type: Float.Type) throws -> Float { Float(try Double.decode(from: cell)) }
    func decode(_ type: Int.Type) throws -> Int { try Int.decode(from: cell) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try Int16.decode(from: cell) }
    func decode(_ type: Int32.Type) throws -> Int32 { try Int32.decode(from: cell) }
    func decode(_ type: Int64.Type) throws -> Int64 { try Int64.decode(from: cell) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try UInt32.decode(from: cell) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(UInt64.self) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let wide = try Int64.decode(from: cell)
        guard let value = T(exactly: wide) else { throw cell.invalidValue(T.self, "out of range") }
        return value
    }
}
