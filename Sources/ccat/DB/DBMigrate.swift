import ArgumentParser
import CCatCLI
import CCatConfig
import Foundation
import OpsDB
import Postgres

struct DBMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the schema migrations the database is missing.",
        discussion: "Safe to run repeatedly and from several hosts at once: concurrent runs wait for each other and nothing is applied twice."
    )

    @OptionGroup var options: GlobalOptions

    struct Output: Encodable {
        var database: String
        var source: String
        var applied: [Applied]
        struct Applied: Encodable {
            var version: Int
            var name: String
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.db")
        try await options.withDatabase(applicationName: "ccat db migrate", logger: logger) { db, location in
            try await report(db, location)
        }
    }

    func report(_ db: PostgresConnection, _ location: DatabaseLocation) async throws {
        let applied = try await Migrator.bundled().migrate(db)
        if options.json {
            try printJSON(Output(database: location.redactedConninfo, source: location.source.kind,
                                 applied: applied.map { .init(version: $0.version, name: $0.name) }))
            return
        }
        print("database: \(location.redactedConninfo) (from \(location.source))")
        if applied.isEmpty {
            print("already up to date")
        } else {
            for migration in applied {
                print("applied \(String(format: "%04d", migration.version)) \(migration.name)")
            }
        }
    }
}
