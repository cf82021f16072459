import Foundation

/// What a registered file may be called. Every name derived from a registration (package names
/// `<obs id>-<location>-<file id>`, archive paths `packages/<name>.tar`, index rows) must fit the
/// limits of file systems, tar, S3 keys and the database, so a registration that would break one
/// of them later is refused now, with what to change.
public enum RegistrationRules {
    /// Observation ids: 1-128 of letters, digits, `.`, `_`, `-`, `+`, `:`, starting with a letter or digit.
    public static let maxObservationIDLength = 128
    /// Instrument and module names: 1-64 of letters, digits, `.`, `_`, `-`.
    public static let maxInstrumentNameLength = 64
    /// A relative path: at most 1024 bytes, each component at most 255 bytes (NAME_MAX).
    public static let maxPathBytes = 1024
    public static let maxComponentBytes = 255

    public struct Violation: Error, Sendable, CustomStringConvertible, Equatable {
        public var field: String
        public var value: String
        public var problem: String
        public var description: String { "\(field) \(value.debugDescription): \(problem)" }
    }

    /// 64 hexadecimal digits, as sha256sum prints them (ASCII only: `Character.isHexDigit` would
    /// also take full-width digits).
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }

    public static func checkObservationID(_ obsID: String) throws {
        func refuse(_ problem: String) -> Violation { Violation(field: "observation id", value: String(obsID.prefix(80)), problem: problem) }
        guard !obsID.isEmpty else { throw refuse("is empty") }
        guard obsID.count <= maxObservationIDLength else {
            throw refuse("is \(obsID.count) characters long; at most \(maxObservationIDLength) are allowed (it becomes part of package and file names)")
        }
        guard obsID.wholeMatch(of: /[A-Za-z0-9][A-Za-z0-9._+:-]*/) != nil else {
            throw refuse("use letters, digits, '.', '_', '-', '+' and ':', starting with a letter or digit")
        }
    }

    /// `instrument` or `instrument/module`.
    public static func checkInstrument(_ value: String) throws {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0.count <= maxInstrumentNameLength && $0.wholeMatch(of: /[A-Za-z0-9][A-Za-z0-9._-]*/) != nil }) else {
            throw Violation(field: "instrument", value: String(value.prefix(80)),
                            problem: "give instrument or instrument/module, each 1-\(maxInstrumentNameLength) letters, digits, '.', '_' or '-'")
        }
    }

    /// A file's path relative to its SOURCE root, as packaging, transfers and staging will use it:
    /// `<observation directory>/.../<file>`, normalised (no empty, `.` or `..` components, no
    /// leading or trailing `/`), without control characters, within the length limits.
    public static func checkRelativePath(_ path: String) throws {
        func refuse(_ problem: String) -> Violation { Violation(field: "path", value: String(path.prefix(200)), problem: problem) }
        if path.isEmpty { throw refuse("is empty") }
        if path.hasPrefix("/") { throw refuse("is absolute; give the path relative to the location's root") }
        if path.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) {
            throw refuse("contains a control character (newline, tab, ...), which file lists and logs cannot show")
        }
        if path.utf8.count > maxPathBytes { throw refuse("is \(path.utf8.count) bytes long; at most \(maxPathBytes) are allowed") }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        for component in components {
            if component.isEmpty { throw refuse("has an empty component ('//', or a '/' at the end); give the normalised path") }
            if component == "." || component == ".." { throw refuse("has a '\(component)' component; give the normalised path inside the root") }
            if component.utf8.count > maxComponentBytes {
                throw refuse("has a component of \(component.utf8.count) bytes; file systems allow \(maxComponentBytes)")
            }
        }
        if components.count < 2 { throw refuse("is not inside an observation directory (<root>/<obs id>/.../<file>)") }
    }
}

/// One line of `ccat files register --batch`: path, size, SHA-256 and observation id, and an
/// optional `instrument[/module]`, separated by tabs.
public struct RegistrationLine: Sendable, Equatable {
    public var path: String
    public var size: Int64
    public var sha256: String
    public var obsID: String
    public var instrument: String?

    public init(path: String, size: Int64, sha256: String, obsID: String, instrument: String?) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.obsID = obsID
        self.instrument = instrument
    }

    /// A line that cannot be registered: its number (from 1) and why.
    public struct Refused: Error, Sendable, CustomStringConvertible, Equatable {
        public var line: Int
        public var problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    /// Every line of `text` that is not empty, each checked against the registration rules. Lines
    /// end in LF or CRLF (a file written on Windows).
    public static func parse(_ text: String) throws -> [RegistrationLine] {
        // Swift counts "\r\n" as one Character, so the text is split on its scalars.
        let rows = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String(String.UnicodeScalarView($0)) }.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        var lines: [RegistrationLine] = []
        for (index, row) in rows.enumerated() where !row.isEmpty {
            let fields = row.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4 || fields.count == 5, let size = Int64(fields[1]), size >= 0,
                  RegistrationRules.isSHA256(fields[2]), !fields[3].isEmpty else {
                throw Refused(line: index + 1, problem: "expected path, size, sha256, obs id[, instrument/module] separated by tabs")
            }
            let line = RegistrationLine(path: fields[0], size: size, sha256: fields[2].lowercased(), obsID: fields[3],
                                        instrument: fields.count == 5 ? fields[4] : nil)
            do {
                try line.check()
            } catch let violation as RegistrationRules.Violation {
                throw Refused(line: index + 1, problem: "\(violation)")
            }
            lines.append(line)
        }
        return lines
    }

    /// The registration rules for the path, the observation id and the instrument.
    public func check() throws {
        try RegistrationRules.checkRelativePath(path)
        try RegistrationRules.checkObservationID(obsID)
        if let instrument { try RegistrationRules.checkInstrument(instrument) }
    }
}
