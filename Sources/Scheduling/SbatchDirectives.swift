import OpsDB
import Topology

/// A value that cannot go into an `#SBATCH` line.
public struct JobScriptError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The `#SBATCH` options of one job. They are built here, not in templates: bash reads these lines
/// as comments, so the one danger is a value that starts a new line; every value is checked, and
/// values sbatch would split are refused with a message naming the setting.
public struct SbatchDirectives: Sendable {
    public var options: [(name: String, value: String?)]

    /// - Parameters:
    ///   - signalMarginSeconds: the runner gets SIGUSR2 this long before the time limit.
    public static func make(queue: String, profile: BatchProfile, stdoutPath: String, stderrPath: String,
                            submitToken: String, signalMarginSeconds: Int) throws -> SbatchDirectives {
        var options: [(String, String?)] = [
            ("job-name", queue),
            ("output", stdoutPath),
            ("error", stderrPath),
            ("comment", "ccat-submit-token=\(submitToken)"),
            ("signal", "B:USR2@\(signalMarginSeconds)"),
            ("requeue", nil),
            ("open-mode", "append"),
        ]
        if let value = profile.partition { options.append(("partition", value)) }
        if let value = profile.account { options.append(("account", value)) }
        if let value = profile.qos { options.append(("qos", value)) }
        if let value = profile.timeLimitMinutes { options.append(("time", BatchProfile.formatMinutes(value))) }
        if let value = profile.cpus { options.append(("cpus-per-task", String(value))) }
        if let value = profile.memoryMB { options.append(("mem", "\(value)M")) }
        if let value = profile.constraint { options.append(("constraint", value)) }
        if let value = profile.nodelist { options.append(("nodelist", value)) }
        if let value = profile.cluster { options.append(("clusters", value)) }
        for (name, value) in options {
            guard let value else { continue }
            if let problem = SbatchRules.valueProblem(value) {
                throw JobScriptError(description: "the --\(name) value '\(value.debugDescription.dropFirst().dropLast())' for queue \(queue) \(problem); change it in the topology or configuration")
            }
        }
        var directives = SbatchDirectives(options: options)
        for extra in profile.extra {
            if let problem = SbatchRules.extraProblem(extra) {
                throw JobScriptError(description: "extra sbatch option '\(extra.debugDescription.dropFirst().dropLast())' for queue \(queue) \(problem)")
            }
            let body = extra.dropFirst(2)
            if let equals = body.firstIndex(of: "=") {
                directives.options.append((String(body[..<equals]), String(body[body.index(after: equals)...])))
            } else {
                directives.options.append((String(body), nil))
            }
        }
        return directives
    }

    /// `#SBATCH --name=value` lines.
    public var lines: String {
        options.map { "#SBATCH --\($0.name)\($0.value.map { "=\($0)" } ?? "")" }.joined(separator: "\n")
    }
}
