import ArgumentParser
import CCatConfig
import Foundation
import Logging
import OpsDB
import Postgres

/// Options every `ccat` and `ccat-runner` command accepts.
public struct GlobalOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: ArgumentHelp(
        "libpq connection string or URI of the ops database.",
        discussion: "Without it: CCAT_DATABASE_URL, then libpq's PGHOST/PGDATABASE/PGSERVICE..., then 'database:' in the config file, then the local cluster from 'make db'. Keep passwords in ~/.pgpass, not here.",
        valueName: "conninfo"))
    public var database: String?

    @Option(name: .long, help: ArgumentHelp("Configuration file (default: $CCAT_CONFIG, else /etc/ccat/ccat.yaml if present).", valueName: "path"))
    public var config: String?

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    public var json = false

    @Option(name: .long, help: ArgumentHelp("Log level on standard error: trace, debug, info, notice, warning, error, critical (default: $CCAT_LOG_LEVEL or warning).", valueName: "level"))
    public var logLevel: String?

    public init() {}

    public func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("unknown log level '\(logLevel)'; use one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    public var resolvedLogLevel: Logger.Level {
        if let logLevel, let level = Logger.Level(rawValue: logLevel) { return level }
        if let value = ProcessInfo.processInfo.environment["CCAT_LOG_LEVEL"], let level = Logger.Level(rawValue: value) { return level }
        return .warning
    }

    public func makeLogger(label: String) -> Logger {
        var logger = Logger(label: label) { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = resolvedLogLevel
        return logger
    }

    public func loadConfiguration() throws -> CCatConfiguration? {
        try CCatConfiguration.load(explicitPath: config)
    }

    public func locateDatabase() throws -> DatabaseLocation {
        try DatabaseLocator(option: database, configuration: loadConfiguration()).locate()
    }

    /// Connects to the ops database; errors name the source of the connection string.
    func connect(applicationName: String, logger: Logger, patient: Bool = false,
                 sessionSettings: [String: String] = [:]) async throws -> (PostgresConnection, DatabaseLocation) {
        let location = try locateDatabase()
        // Patient callers (batch runners) ride out about two minutes of a server that is away,
        // also for their first connection; commands report the first failure at once.
        var configuration = PostgresConfiguration(conninfo: location.conninfo, applicationName: applicationName,
                                                  reconnectAttempts: patient ? 9 : 4, waitForFirstConnection: patient)
        configuration.sessionSettings = sessionSettings
        do {
            return (try await PostgresConnection.connect(configuration, logger: logger), location)
        } catch var error as PostgresError {
            error.message += " [connection string from \(location.source)]"
            throw error
        }
    }

    /// Connects, runs `body`, and closes the connection whether `body` succeeded or not.
    /// `patient`: see `connect`.
    public func withDatabase<T>(applicationName: String, logger: Logger, patient: Bool = false, sessionSettings: [String: String] = [:],
                                _ body: (PostgresConnection, DatabaseLocation) async throws -> T) async throws -> T {
        let (connection, location) = try await connect(applicationName: applicationName, logger: logger, patient: patient,
                                                       sessionSettings: sessionSettings)
        do {
            let result = try await body(connection, location)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}

extension GlobalOptions {
    /// The opening every command on the ops tables shares: connect as `applicationName`, refuse a
    /// database whose schema lacks migrations ('ccat db migrate' first), run `body`, close.
    public func withOpsDatabase<T>(_ applicationName: String, logger: Logger, patient: Bool = false,
                                   _ body: (OpsDB) async throws -> T) async throws -> T {
        try await withDatabase(applicationName: applicationName, logger: logger, patient: patient) { connection, _ in
            try await requireCurrentSchema(connection)
            return try await body(OpsDB(connection))
        }
    }
}

public struct SchemaNotCurrent: Error, CustomStringConvertible {
    public var pending: [Int]
    public var description: String {
        "the ops database schema is not up to date (pending migration\(pending.count == 1 ? "" : "s") \(pending.map(String.init).joined(separator: ", "))); run 'ccat db migrate' first"
    }
}

/// Commands that work on the ops tables refuse to run against a database that lacks migrations.
public func requireCurrentSchema(_ db: PostgresConnection) async throws {
    let pending = try await Migrator.bundled().status(db).filter { !$0.isApplied }.map(\.version)
    if !pending.isEmpty { throw SchemaNotCurrent(pending: pending) }
}
