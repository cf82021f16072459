import Foundation
import OpsDB
import Topology

/// The `#SBATCH` options of a job script as the local scheduler reads them: the block of `#SBATCH`
/// lines after the shebang, up to the first line that is neither a comment nor blank (sbatch's rule).
public struct SbatchScriptOptions: Sendable, Equatable {
    public var jobName: String?
    public var output: String?
    public var error: String?
    public var comment: String?
    public var timeLimitSeconds: Int?
    /// `--signal=[B:]SIG@seconds`: which signal, and how long before the time limit.
    public var warningSignal: Int32?
    public var warningSeconds: Int?

    public init() {}

    public static func parse(script: String) throws -> SbatchScriptOptions {
        var options = SbatchScriptOptions()
        for rawLine in script.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || (line.hasPrefix("#") && !line.hasPrefix("#SBATCH")) { continue }
            guard line.hasPrefix("#SBATCH") else { break }
            let words = line.dropFirst("#SBATCH".count).split(whereSeparator: \.isWhitespace).map(String.init)
            guard let first = words.first else { continue }
            var name: String, value: String?
            if first.hasPrefix("--") {
                let body = first.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    name = String(body[..<equals])
                    value = String(body[body.index(after: equals)...])
                } else {
                    name = String(body)
                    value = words.count > 1 ? words[1] : nil
                }
            } else if first.hasPrefix("-"), first.count >= 2 {
                let short = first.dropFirst().prefix(1)
                name = ["J": "job-name", "o": "output", "e": "error", "t": "time"][String(short)] ?? String(short)
                let attached = first.dropFirst(2)
                value = attached.isEmpty ? (words.count > 1 ? words[1] : nil) : String(attached)
            } else {
                continue
            }
            switch name {
            case "job-name": options.jobName = value
            case "output": options.output = value
            case "error": options.error = value
            case "comment": options.comment = value
            case "time":
                guard let value, let seconds = parseTime(value) else {
                    throw JobScriptError(description: "#SBATCH --time value '\(value ?? "")' is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]])")
                }
                options.timeLimitSeconds = seconds
            case "signal":
                guard let value, let parsed = parseSignal(value) else {
                    throw JobScriptError(description: "#SBATCH --signal value '\(value ?? "")' is not [B:]SIGNAL[@seconds]")
                }
                options.warningSignal = parsed.signal
                options.warningSeconds = parsed.seconds
            default:
                break
            }
        }
        return options
    }

    /// Slurm's time formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; `UNLIMITED`/`INFINITE`
    /// mean no limit (nil is returned only for text that does not parse).
    public static func parseTime(_ text: String) -> Int? {
        if ["UNLIMITED", "INFINITE"].contains(text.uppercased()) { return Int.max }
        return BatchProfile.parseSlurmTimeSeconds(text)
    }

    static let signalNumbers: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "ALRM": SIGALRM,
    ]

    /// `[{R|B}:]SIG[@seconds]`; Slurm's default margin is 60 seconds.
    static func parseSignal(_ text: String) -> (signal: Int32, seconds: Int)? {
        var body = Substring(text)
        if let colon = body.firstIndex(of: ":") { body = body[body.index(after: colon)...] }
        var seconds = 60
        if let at = body.firstIndex(of: "@") {
            guard let value = Int(body[body.index(after: at)...]), value >= 0 else { return nil }
            seconds = value
            body = body[..<at]
        }
        var name = body.uppercased()
        if name.hasPrefix("SIG") { name = String(name.dropFirst(3)) }
        if let number = Int32(name) { return (number, seconds) }
        guard let number = signalNumbers[name] else { return nil }
        return (number, seconds)
    }

    /// Slurm's filename patterns that make sense on one machine: `%j`, `%x`, `%%`.
    public static func expand(_ pattern: String, jobID: String, jobName: String) -> String {
        var result = ""
        var iterator = pattern.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else { result.append(character); continue }
            switch iterator.next() {
            case "j": result += jobID
            case "x": result += jobName
            case "%": result += "%"
            case let other?: result += "%\(other)"
            case nil: result += "%"
            }
        }
        return result
    }
}
