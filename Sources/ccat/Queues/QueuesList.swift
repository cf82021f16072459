import ArgumentParser
import CCatCLI
import OpsDB
import Postgres
import Topology

struct QueuesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every queue with its location, operation and batch submission profile."
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: "Only queues of this site (short name).")
    var site: String?

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.queues")
        try await options.withOpsDatabase("ccat queues list", logger: logger) { db in
            let queues = try await QueueDiscovery.discover(db).filter { site == nil || $0.siteShortName == site }
            if options.json {
                try printJSON(queues)
                return
            }
            if queues.isEmpty {
                print(site.map { "no active locations at site '\($0)'" } ?? "no queues: no active locations yet ('ccat topology apply FILE' declares them)")
                return
            }
            var table = TextTable(["QUEUE", "OPERATION", "PARTITION", "ACCOUNT", "QOS", "TIME", "CPUS", "MEM", "WHERE", "CLUSTER", "MAXQ"])
            for queue in queues {
                let profile = queue.profile
                let place = [profile.constraint.map { "constraint=\($0)" }, profile.nodelist.map { "nodes=\($0)" }].compactMap { $0 }.joined(separator: " ")
                table.append([
                    queue.name, queue.operation.rawValue, profile.partition ?? "-", profile.account ?? "-", profile.qos ?? "-",
                    profile.timeLimitMinutes.map(BatchProfile.formatMinutes) ?? "-", profile.cpus.map(String.init) ?? "-",
                    profile.memoryMB.map { $0 % 1024 == 0 ? "\($0 / 1024)G" : "\($0)M" } ?? "-",
                    place.isEmpty ? "-" : place, profile.cluster ?? "-", profile.maxQueuedJobs.map(String.init) ?? "-",
                ])
            }
            print(table.render())
        }
    }
}
