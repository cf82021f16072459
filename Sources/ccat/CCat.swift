import ArgumentParser
import CCatCLI

@main
struct CCat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ccat",
        abstract: "Manage the CCAT data pipeline: ops database, topology, daemon, files, staging.",
        discussion: """
            The ops database is found from --database, CCAT_DATABASE_URL, libpq's PG* variables, \
            'database:' in /etc/ccat/ccat.yaml, or the local cluster started by 'make db', in that order.
            """,
        version: ccatVersion,
        subcommands: [DB.self, TopologyCommand.self, Queues.self, Routes.self, Files.self, Daemon.self, Status.self, Ops.self, Jobs.self, Audit.self, Throughput.self, Find.self, Stage.self, Version.self]
    )
}
