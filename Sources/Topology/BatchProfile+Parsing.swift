import Foundation
import OpsDB

extension BatchProfile {
    /// Parses Slurm time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    /// Seconds round up to the next minute.
    public static func parseTimeLimit(_ text: String) -> Int? {
        guard let seconds = parseSlurmTimeSeconds(text), seconds > 0 else { return nil }
        return (seconds + 59) / 60
    }

    /// The same formats in seconds (`sbatch --time`, as the local scheduler reads it).
    public static func parseSlurmTimeSeconds(_ text: String) -> Int? {
        var days = 0
        var rest = Substring(text)
        if let dash = rest.firstIndex(of: "-") {
            guard let d = Int(rest[..<dash]), d >= 0 else { return nil }
            days = d
            rest = rest[rest.index(after: dash)...]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...3).contains(parts.count), parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        let values = parts.map { $0! }
        if days > 0 || text.contains("-") {
            // D-H, D-H:M, D-H:M:S
            let padded = values + Array(repeating: 0, count: 3 - values.count)
            return days * 86_400 + padded[0] * 3600 + padded[1] * 60 + padded[2]
        }
        switch values.count {
        case 1: return values[0] * 60
        case 2: return values[0] * 60 + values[1]
        default: return values[0] * 3600 + values[1] * 60 + values[2]
        }
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
