import Foundation
import Yams

/// The daemon and CLI configuration file (YAML), `/etc/ccat/ccat.yaml` unless `--config` or
/// `CCAT_CONFIG` names another. Every key is optional.
public struct CCatConfiguration: Sendable, Equatable {
    public static let defaultPath = "/etc/ccat/ccat.yaml"

    /// The file it was read from.
    public var path: String
    /// libpq conninfo or URI of the ops database (without a password: use ~/.pgpass or PGPASSFILE).
    public var database: String?
    /// `local` (the embedded scheduler, the default) or `slurm`.
    public var scheduler: String?
    /// Job scripts, job logs and the local scheduler's state. On a cluster it must be on a file
    /// system the compute nodes see.
    public var stateDirectory: String?
    /// Whether Slurm accounting (slurmdbd, `sacct`) is available; without it `squeue` is used.
    public var slurmAccounting: Bool?
    /// Jobs of one queue the local scheduler runs at once (default: the number of cores).
    public var localConcurrency: Int?
    /// `ccat-runner` as the compute nodes reach it (default: next to `ccat`).
    public var runner: String?
    /// Directory of job script templates that override the built-in ones.
    public var jobscriptOverrides: String?
    /// munged's socket (default: libmunge's, `/run/munge/munge.socket.2`).
    public var mungeSocket: String?
    /// The PROCESSING location `ccat stage request` uses when `--location` is not given.
    public var stagingLocation: String?
    /// The `daemon:` settings as the file gives them (each overridden by the `ccat daemon` option
    /// of the same name): seconds, or bytes for the `_bytes` keys.
    public var daemon: [String: Double] = [:]
    /// The defaults with the file's `daemon:` settings applied.
    public var daemonSettings = DaemonSettings()
    /// The connection string job scripts give runners (typically a login in `ccat_runner`),
    /// instead of the daemon's own.
    public var runnerDatabase: String?
    /// Where `ccat daemon` serves its status page, /metrics and /healthz (`--http` wins); off when unset.
    public var http: String?
    /// Where alerts go; none are sent when unset (they are still tracked and shown).
    public var alerts = AlertSettings()

    /// The keys `daemon:` accepts (`DaemonSettings.keys`).
    public static let daemonKeys = Set(DaemonSettings.keys.map(\.name))

    static let knownKeys: Set<String> = ["database", "scheduler", "state_directory", "slurm_accounting", "local_concurrency",
                                         "runner", "jobscript_overrides", "munge_socket", "staging_location", "daemon", "http", "alerts", "runner_database"]

    public init(path: String, database: String? = nil) {
        self.path = path
        self.database = database
    }

    /// Reads the configuration: `explicitPath` must exist; the default path may be absent (nil).
    public static func load(explicitPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CCatConfiguration? {
        let path = explicitPath ?? environment["CCAT_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        guard let path else {
            guard FileManager.default.fileExists(atPath: defaultPath) else { return nil }
            return try parse(contentsOf: defaultPath)
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError(path: path, line: nil, message: "file not found")
        }
        return try parse(contentsOf: path)
    }

    public static func parse(contentsOf path: String) throws -> CCatConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(path: path, line: nil, message: "cannot read: \(error.localizedDescription)")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> CCatConfiguration {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(path: path, line: yamlLine(error), message: "not valid YAML: \(yamlProblem(error))")
        }
        var configuration = CCatConfiguration(path: path)
        guard let node else { return configuration }
        guard let mapping = node.mapping else {
            throw ConfigurationError(path: path, line: node.mark.map { $0.line }, message: "the top level must be a mapping of keys to values")
        }
        for (key, value) in mapping {
            guard let name = key.string else {
                throw ConfigurationError(path: path, line: key.mark.map { $0.line }, message: "keys must be strings")
            }
            guard knownKeys.contains(name) else {
                throw ConfigurationError(path: path, line: key.mark.map { $0.line },
                                         message: "unknown key '\(name)' (known: \(knownKeys.sorted().joined(separator: ", ")))")
            }
            let line = value.mark.map { $0.line }
            func string(_ what: String) throws -> String {
                guard let string = value.string, !string.isEmpty else {
                    throw ConfigurationError(path: path, line: line, message: "'\(name)' must be \(what)")
                }
                return string
            }
            switch name {
            case "database":
                configuration.database = try string("a libpq connection string or URI")
            case "scheduler":
                let kind = try string("'local' or 'slurm'")
                guard ["local", "slurm"].contains(kind) else {
                    throw ConfigurationError(path: path, line: line, message: "'scheduler' must be 'local' or 'slurm', not '\(kind)'")
                }
                configuration.scheduler = kind
            case "state_directory":
                configuration.stateDirectory = try string("an absolute directory path")
                guard configuration.stateDirectory?.hasPrefix("/") == true else {
                    throw ConfigurationError(path: path, line: line, message: "'state_directory' must be an absolute path")
                }
            case "slurm_accounting":
                guard let flag = value.bool else {
                    throw ConfigurationError(path: path, line: line, message: "'slurm_accounting' must be true or false")
                }
                configuration.slurmAccounting = flag
            case "local_concurrency":
                guard let number = value.int, number > 0 else {
                    throw ConfigurationError(path: path, line: line, message: "'local_concurrency' must be a positive whole number")
                }
                configuration.localConcurrency = number
            case "runner":
                configuration.runner = try string("the path of ccat-runner on the compute nodes")
            case "jobscript_overrides":
                configuration.jobscriptOverrides = try string("a directory of job script templates")
            case "munge_socket":
                configuration.mungeSocket = try string("the path of munged's socket")
            case "staging_location":
                configuration.stagingLocation = try string("the name of a PROCESSING location")
            case "daemon":
                guard let settings = value.mapping else {
                    throw ConfigurationError(path: path, line: line, message: "'daemon' must be a mapping of settings, e.g. 'bundle_max_bytes: 100000000000'")
                }
                for (settingKey, settingValue) in settings {
                    let setting = settingKey.string ?? ""
                    guard daemonKeys.contains(setting) else {
                        throw ConfigurationError(path: path, line: settingKey.mark.map { $0.line },
                                                 message: "unknown daemon setting '\(setting)' (known: \(daemonKeys.sorted().joined(separator: ", ")))")
                    }
                    do {
                        try configuration.daemonSettings.set(setting, to: settingValue.float ?? settingValue.int.map(Double.init) ?? .nan)
                    } catch let refusal as DaemonSettings.Refusal {
                        throw ConfigurationError(path: path, line: settingValue.mark.map { $0.line }, message: refusal.description)
                    }
                    configuration.daemon[setting] = settingValue.float ?? settingValue.int.map(Double.init)
                }
            case "runner_database":
                configuration.runnerDatabase = try string("a libpq connection string or URI for the runners (a role in ccat_runner)")
            case "http":
                configuration.http = try value.int.map { String($0) } ?? string("an address to listen on, e.g. 127.0.0.1:9464")
            case "alerts":
                configuration.alerts = try AlertSettings.parse(value, path: path)
            default:
                break
            }
        }
        return configuration
    }

    private static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        default:
            return "\(error)"
        }
    }
}

/// A problem in a configuration file, naming the file and, where known, the line.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var line: Int?
    public var message: String

    public var description: String {
        "\(path)\(line.map { ":\($0)" } ?? ""): \(message)"
    }
}
