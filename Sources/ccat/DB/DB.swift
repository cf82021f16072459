import ArgumentParser

struct DB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Ops database schema: apply migrations, show their state.",
        subcommands: [DBMigrate.self, DBStatus.self, DBGrants.self, DBRecount.self]
    )
}
