import ArgumentParser
import CCatCLI

@main
struct CCatRunner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ccat-runner",
        abstract: "Compute-node runner: executes the operations of a batch job and reports to the ops database.",
        discussion: "Started by the job scripts the daemon submits. It finds the database like ccat does; never put a password on its command line (use ~/.pgpass or PGPASSFILE).",
        version: ccatVersion,
        subcommands: [Run.self, Exec.self, Check.self]
    )
}
