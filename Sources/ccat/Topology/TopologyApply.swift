import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Topology

struct TopologyApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Validate a topology file, then bring the database in line with it in one transaction.",
        discussion: """
            Prints what was created, changed, deactivated or deleted. Re-applying the same file changes \
            nothing. A location removed from the file is deleted only if nothing refers to it; one that \
            holds data is deactivated instead. When validation fails, every problem is listed with its \
            line and nothing is written.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The topology file (YAML).", completion: .file())
    var file: String

    @Flag(name: .long, help: "Show what would change without changing anything.")
    var dryRun = false

    struct Output: Encodable {
        var file: String
        var dryRun: Bool
        var changes: TopologyChanges
    }

    func run() async throws {
        let spec = try TopologyParser.parse(contentsOf: file)
        let logger = options.makeLogger(label: "ccat.topology")
        try await options.withOpsDatabase("ccat topology apply", logger: logger) { db in
            let changes = try await TopologySync(logger: logger).apply(spec, to: db.connection, dryRun: dryRun)
            if options.json {
                try printJSON(Output(file: file, dryRun: dryRun, changes: changes))
                return
            }
            let sections: [(String, [String])] = [
                (dryRun ? "would create" : "created", changes.created),
                (dryRun ? "would change" : "changed", changes.changed),
                (dryRun ? "would deactivate" : "deactivated", changes.deactivated),
                (dryRun ? "would delete" : "deleted", changes.deleted),
            ]
            for (verb, items) in sections {
                for item in items { print("\(verb.padding(toLength: 17, withPad: " ", startingAt: 0)) \(item)") }
            }
            let summary = "\(changes.created.count) created, \(changes.changed.count) changed, \(changes.deactivated.count) deactivated, \(changes.deleted.count) deleted, \(changes.unchanged.count) unchanged"
            if changes.isEmpty {
                print("\(file): the database already matches (\(changes.unchanged.count) unchanged)")
            } else {
                print("\(file): \(summary)\(dryRun ? " (dry run: nothing was written)" : "")")
            }
        }
    }
}
