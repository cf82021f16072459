import Foundation
import OpsDB

/// Prints `value` as pretty JSON with snake_case keys and ISO 8601 dates.
public func printJSON<T: Encodable>(_ value: T) throws {
    let data = try JSONDocument.encoder().encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// A plain-text table with left-aligned columns, for terminals and logs alike.
public struct TextTable {
    public var headers: [String]
    public var rows: [[String]] = []

    public init(_ headers: [String]) { self.headers = headers }

    /// Control characters in a cell (a newline in a file name or an error message) would break
    /// the table into extra rows: they are shown escaped, as Swift writes them (`\n`, `\t`, `\u{1B}`).
    public mutating func append(_ row: [String]) { rows.append(row.map(Self.oneLine)) }

    public static func oneLine(_ cell: String) -> String {
        guard cell.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) else { return cell }
        return cell.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? $0.escaped(asASCII: false) : String($0) }.joined()
    }

    public func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

/// `2026-11-21 07:17:31Z`: UTC, to the second.
public func formatTimestamp(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime, .withTimeZone]
    return formatter.string(from: date)
}

/// Writes a line to standard error.
public func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// An error found while running a command (not a mistake in its arguments, so no usage text).
public struct CommandError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
