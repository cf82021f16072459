import Foundation
import OpsDB

extension BatchProfile {
    /// Parses Slurm time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    /// Seconds round up to the next minute.
    public static func parseTimeLimit(_ text: String) -> Int? {
        var days = 0
        var rest = Substring(text)
        if let dash = rest.firstIndex(of: "-") {
            guard let d = Int(rest[..<dash]), d >= 0 else { return nil }
            days = d
            rest = rest[rest.index(after: dash)...]
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
            let values = parts.map { $0! }
            let hours = values[0], minutes = values.count > 1 ? values[1] : 0, seconds = values.count > 2 ? values[2] : 0
            let total = days * 1440 + hours * 60 + minutes + (seconds > 0 ? 1 : 0)
            return total > 0 ? total : nil
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        let values = parts.map { $0! }
        let total: Int
        switch values.count {
        case 1: total = values[0]
        case 2: total = values[0] + (values[1] > 0 ? 1 : 0)
        default: total = values[0] * 60 + values[1] + (values[2] > 0 ? 1 : 0)
        }
        return total > 0 ? total : nil
    }

    /// Parses sizes with a binary unit: `512M`, `4G`, `2T`, `1024K`, or a bare number of `defaultUnit`.
    public static func parseSize(_ text: String, defaultUnit: Int64) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int64)] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10),
                                        ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let value = Int64(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0 else { return nil }
            return value.multipliedReportingOverflow(by: factor).overflow ? nil : value * factor
        }
        guard let value = Int64(trimmed), value > 0 else { return nil }
        return value.multipliedReportingOverflow(by: defaultUnit).overflow ? nil : value * defaultUnit
    }
}
