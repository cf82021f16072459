import Foundation
import Postgres

/// Where a database connection string came from, so `ccat db status` can say which one it used.
public enum DatabaseSource: Sendable, Equatable, CustomStringConvertible {
    case commandLine
    case environment(variable: String)
    /// libpq reads these variables itself; the connection string is empty.
    case libpqEnvironment(variables: [String])
    case configFile(path: String)
    case localCluster(pointer: String)

    public var description: String {
        switch self {
        case .commandLine: return "the --database option"
        case .environment(let variable): return "the environment variable \(variable)"
        case .libpqEnvironment(let variables): return "libpq's environment (\(variables.joined(separator: ", ")))"
        case .configFile(let path): return "the config file \(path)"
        case .localCluster(let pointer): return "the local development cluster (\(pointer))"
        }
    }

    /// A short machine-readable name for `--json`.
    public var kind: String {
        switch self {
        case .commandLine: return "command-line"
        case .environment: return "environment"
        case .libpqEnvironment: return "libpq-environment"
        case .configFile: return "config-file"
        case .localCluster: return "local-cluster"
        }
    }
}

public struct DatabaseLocation: Sendable, Equatable {
    public var conninfo: String
    public var source: DatabaseSource

    public init(conninfo: String, source: DatabaseSource) {
        self.conninfo = conninfo
        self.source = source
    }

    /// The connection string without any password, safe to print.
    public var redactedConninfo: String { PostgresConnInfo.redacted(conninfo) }

    /// How a batch job's runner finds this database, as variables its job script exports. No
    /// secret is ever written into a script: a database named in the config file is found by
    /// the runner reading the same file (`CCAT_CONFIG`); a connection string loses its password,
    /// which the runner then takes from `~/.pgpass`, `PGPASSFILE` or a service file
    /// (`droppedPassword` says so); libpq's own variables reach the job from the submitting
    /// environment.
    /// `runnerDatabase` (the config file's `runner_database`) replaces the daemon's own connection
    /// string for the runners.
    public func jobEnvironment(runnerDatabase: String? = nil) throws -> (variables: [(name: String, value: String)], droppedPassword: Bool) {
        if let runnerDatabase {
            let stripped = try PostgresConnInfo.withoutPassword(runnerDatabase)
            let config: [(name: String, value: String)] = if case .configFile(let path) = source { [("CCAT_CONFIG", path)] } else { [] }
            return (config + [("CCAT_DATABASE_URL", stripped.conninfo)], stripped.hadPassword)
        }
        switch source {
        case .configFile(let path):
            return ([("CCAT_CONFIG", path)], false)
        case .libpqEnvironment:
            return ([], false)
        case .commandLine, .environment, .localCluster:
            let stripped = try PostgresConnInfo.withoutPassword(conninfo)
            return ([("CCAT_DATABASE_URL", stripped.conninfo)], stripped.hadPassword)
        }
    }
}

public struct DatabaseNotConfigured: Error, CustomStringConvertible {
    public var description: String {
        """
        no database configured. Give one of: --database CONNINFO, CCAT_DATABASE_URL, libpq's PGHOST/PGDATABASE/PGSERVICE, \
        'database:' in /etc/ccat/ccat.yaml (or --config FILE); or run 'make db' for a local development cluster
        """
    }
}

/// Finds the database the way every `ccat` and `ccat-runner` command does, first match wins:
/// 1. the `--database` option; 2. `CCAT_DATABASE_URL`; 3. libpq's own variables (`PGHOST`,
/// `PGHOSTADDR`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGSERVICE`), left for libpq to read;
/// 4. `database:` in the config file; 5. the local cluster that `make db` started (found from
/// `.ccat-dev/postgres/conninfo` in the current directory or a parent, `$CCAT_DEV_DIR`, or the
/// pointer in `$XDG_STATE_HOME/ccat/local-database`).
public struct DatabaseLocator: Sendable {
    public static let libpqVariables = ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"]

    public var option: String?
    public var configuration: CCatConfiguration?
    public var environment: [String: String]
    public var currentDirectory: String

    public init(option: String?, configuration: CCatConfiguration?,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                currentDirectory: String = FileManager.default.currentDirectoryPath) {
        self.option = option
        self.configuration = configuration
        self.environment = environment
        self.currentDirectory = currentDirectory
    }

    public func locate() throws -> DatabaseLocation {
        if let option, !option.isEmpty {
            return DatabaseLocation(conninfo: option, source: .commandLine)
        }
        if let url = environment["CCAT_DATABASE_URL"], !url.isEmpty {
            return DatabaseLocation(conninfo: url, source: .environment(variable: "CCAT_DATABASE_URL"))
        }
        let libpq = Self.libpqVariables.filter { !(environment[$0] ?? "").isEmpty }
        if !libpq.isEmpty {
            return DatabaseLocation(conninfo: "", source: .libpqEnvironment(variables: libpq))
        }
        if let configuration, let database = configuration.database, !database.isEmpty {
            return DatabaseLocation(conninfo: database, source: .configFile(path: configuration.path))
        }
        if let local = localCluster() {
            return local
        }
        throw DatabaseNotConfigured()
    }

    func localCluster() -> DatabaseLocation? {
        var candidates: [String] = []
        if let devDir = environment["CCAT_DEV_DIR"], !devDir.isEmpty {
            candidates.append("\(devDir)/postgres/conninfo")
        }
        var directory = URL(fileURLWithPath: currentDirectory).standardizedFileURL
        while true {
            candidates.append(directory.appendingPathComponent(".ccat-dev/postgres/conninfo").path)
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { break }
            directory = parent
        }
        let stateHome = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "\(environment["HOME"] ?? NSHomeDirectory())/.local/state"
        candidates.append("\(stateHome)/ccat/local-database")
        for path in candidates {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let conninfo = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !conninfo.isEmpty {
                return DatabaseLocation(conninfo: conninfo, source: .localCluster(pointer: path))
            }
        }
        return nil
    }
}
