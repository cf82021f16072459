import ArgumentParser
import CCatCLI
import CCatConfig
import Foundation
import OpsDB
import Postgres

struct DBStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show which database is used, where that setting came from, and applied and pending migrations."
    )

    @OptionGroup var options: GlobalOptions

    struct Output: Encodable {
        var database: Database
        var serverVersion: String
        var migrations: [MigrationState]
        var pending: Int
        var upToDate: Bool
        struct Database: Encodable {
            var conninfo: String
            var source: String
            var sourceDetail: String
            var target: ConnectionTarget
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.db")
        try await options.withDatabase(applicationName: "ccat db status", logger: logger) { db, location in
            try await report(db, location)
        }
    }

    func report(_ db: PostgresConnection, _ location: DatabaseLocation) async throws {
        let states = try await Migrator.bundled().status(db)
        let version = try await db.serverVersion()
        let target = try await db.target()
        let serverVersion = version >= 100000 ? "\(version / 10000).\(version % 10000)" : "\(version / 10000).\(version / 100 % 100).\(version % 100)"
        let pending = states.filter { !$0.isApplied }.count
        if options.json {
            try printJSON(Output(
                database: .init(conninfo: location.redactedConninfo, source: location.source.kind,
                                sourceDetail: location.source.description, target: target),
                serverVersion: serverVersion, migrations: states, pending: pending, upToDate: pending == 0))
            return
        }
        print("database:  \(location.redactedConninfo)")
        print("from:      \(location.source)")
        print("connected: \(target.summary), PostgreSQL \(serverVersion)")
        let applied = states.count - pending
        if pending == 0 {
            print("schema:    up to date (\(applied) migration\(applied == 1 ? "" : "s") applied)")
        } else {
            print("schema:    \(pending) pending migration\(pending == 1 ? "" : "s"); run 'ccat db migrate'")
        }
        var table = TextTable(["VERSION", "NAME", "APPLIED"])
        for state in states {
            var applied = state.appliedAt.map(formatTimestamp) ?? "pending"
            if state.modifiedSinceApplied { applied += " (file changed since!)" }
            if state.unknownToThisBuild { applied += " (not in this build: newer ccat?)" }
            table.append([String(format: "%04d", state.version), state.name, applied])
        }
        print("")
        print(table.render())
    }
}
