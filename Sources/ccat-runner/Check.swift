import ArgumentParser
import CCatCLI
import CCatConfig
import Foundation
import OpsDB
import Postgres

/// What a compute node sees: can it reach the database, and does the schema match this build?
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that this node reaches the ops database and that its schema matches this build.",
        discussion: "Exits non-zero when the database is unreachable or migrations are pending, so a job script can stop before doing any work."
    )

    @OptionGroup var options: GlobalOptions

    struct Output: Encodable {
        var host: String
        var database: String
        var source: String
        var target: ConnectionTarget
        var pendingMigrations: [Int]
        var libraries: LinkedLibraries
        var ok: Bool
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.runner")
        try await options.withDatabase(applicationName: "ccat-runner", logger: logger) { db, location in
            try await report(db, location)
        }
    }

    func report(_ db: PostgresConnection, _ location: DatabaseLocation) async throws {
        let pending = try await Migrator.bundled().status(db).filter { !$0.isApplied }.map(\.version)
        let target = try await db.target()
        let host = ProcessInfo.processInfo.hostName
        if options.json {
            try printJSON(Output(host: host, database: location.redactedConninfo, source: location.source.kind,
                                 target: target, pendingMigrations: pending, libraries: .current(), ok: pending.isEmpty))
        } else {
            print("host:      \(host)")
            print("database:  \(location.redactedConninfo) (from \(location.source))")
            print("connected: \(target.summary)")
            print(pending.isEmpty ? "schema:    matches this build" : "schema:    migrations \(pending.map(String.init).joined(separator: ", ")) pending; run 'ccat db migrate'")
        }
        if !pending.isEmpty { throw ExitCode(3) }
    }
}
