import ArgumentParser
import CCatCLI
import OpsDB
import Postgres
import Topology

struct RoutesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List automatic and custom routes.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.routes")
        try await options.withOpsDatabase("ccat routes list", logger: logger) { db in
            let routes = try await RouteTable.load(db).allRoutes()
            if options.json {
                try printJSON(routes)
                return
            }
            if routes.isEmpty {
                print("no routes: the topology needs a site with an active SOURCE location and one with a LONG_TERM_ARCHIVE")
                return
            }
            var table = TextTable(["ORIGIN", "DESTINATION", "KIND", "NAME", "PATH", "METHOD", "NOTE"])
            for route in routes {
                let path = ([route.origin] + route.hops.map { hop in
                    hop.toLocation.map { "\(hop.toSite).\($0)" } ?? (hop.intoArchive ? "\(hop.toSite) (archive)" : hop.toSite)
                }).joined(separator: " -> ")
                table.append([route.origin, route.destination, route.kind.rawValue, route.name ?? "-", path,
                              route.hops.first?.method.rawValue.lowercased() ?? "-", route.overriddenBy.map { "overridden by \($0)" } ?? ""])
            }
            print(table.render())
        }
    }
}
