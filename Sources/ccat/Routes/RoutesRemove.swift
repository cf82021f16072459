import ArgumentParser
import CCatCLI
import OpsDB
import Postgres

struct RoutesRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a custom route; the automatic route between its sites applies again."
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The route's name (see 'ccat routes list').") var name: String

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.routes")
        try await options.withOpsDatabase("ccat routes remove", logger: logger) { db in
            guard try await db.deleteRoute(name: name) else {
                let names = try await db.routes().map(\.name)
                throw CommandError("no custom route named '\(name)'\(names.isEmpty ? "; there are none" : " (custom routes: \(names.joined(separator: ", ")))")")
            }
            try await db.notifyWork("routes changed")
            if options.json {
                try printJSON(["removed": name])
            } else {
                print("removed route \(name)")
            }
        }
    }
}
