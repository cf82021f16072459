import Foundation
import OpsDB

extension BatchProfile {
    /// Parses Slurm time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    /// Seconds round up to the next minute.
    public static func parseTimeLimit(_ text: String) -> Int? {
        guard let seconds = parseSlurmTimeSeconds(text), seconds > 0 else { return nil }
        return (seconds + 59) / 60
    }

    /// A hundred years: beyond any batch time limit, within every integer the schema keeps.
    static let maximumTimeSeconds = 100 * 366 * 86_400

    /// The same formats in seconds (`sbatch --time`, as the local scheduler reads it).
    public static func parseSlurmTimeSeconds(_ text: String) -> Int? {
        var days = 0
        var rest = Substring(text)
        if let dash = rest.firstIndex(of: "-") {
            guard let d = Int(rest[..<dash]), d >= 0, d <= maximumTimeSeconds / 86_400 else { return nil }
            days = d
            rest = rest[rest.index(after: dash)...]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        // Each part bounded, so the sum below cannot overflow; the total is bounded after it.
        guard (1...3).contains(parts.count), parts.allSatisfy({ ($0 ?? -1) >= 0 && ($0 ?? 0) <= maximumTimeSeconds }) else { return nil }
        let values = parts.map { $0! }
        guard let seconds = combine(days: days, values: values, text: text), seconds <= maximumTimeSeconds else { return nil }
        return seconds
    }

    private static func combine(days: Int, values: [Int], text: String) -> Int? {
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

/// What an `#SBATCH` line can carry. `ccat topology apply` and the job-script renderer use the same
/// rules, so a profile the topology accepts never fails at submission.
public enum SbatchRules {
    /// Options the renderer writes itself from the queue's profile and the job; `extra` may not set
    /// them again (sbatch takes the last of two, so `--comment` in `extra` would replace the submit
    /// token an ambiguous submission is found by, and `--output` would move the job's log).
    public static let ownedOptions: Set<String> = [
        "job-name", "output", "error", "comment", "signal", "requeue", "no-requeue", "open-mode",
        "partition", "account", "qos", "time", "cpus-per-task", "mem", "constraint", "nodelist",
        "clusters", "cluster",
    ]

    /// Why `value` cannot be an option's value on an `#SBATCH` line, or nil.
    public static func valueProblem(_ value: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" || $0 == "\\" || ($0.asciiValue.map { $0 < 32 || $0 == 127 } ?? false) }) {
            return "contains spaces, quotes or control characters, which an #SBATCH line cannot carry"
        }
        return nil
    }

    /// Why `option` (an `extra` entry such as `--gres=gpu:1`) cannot be added to a job, or nil.
    public static func extraProblem(_ option: String) -> String? {
        guard option.hasPrefix("--"), option.count > 2 else { return "must be one sbatch long option, starting with '--'" }
        let body = option.dropFirst(2)
        let name = String(body.prefix { $0 != "=" })
        guard name.wholeMatch(of: /[a-z][a-z0-9-]*/) != nil else { return "'--\(name)' is not an sbatch long option name" }
        if "wrap".hasPrefix(name) { return "would replace the job script with a command" }
        // sbatch, like getopt_long, takes an unambiguous abbreviation for the whole name.
        if let owned = ownedOptions.sorted().first(where: { $0.hasPrefix(name) }) {
            return "sets --\(owned), which ccat writes itself from the profile and the job (use the profile's own keys: partition, account, qos, time_limit, cpus, memory, constraint, nodelist, cluster)"
        }
        if let equals = body.firstIndex(of: "=") {
            if let problem = valueProblem(String(body[body.index(after: equals)...])) { return "its value \(problem)" }
        }
        return nil
    }
}
