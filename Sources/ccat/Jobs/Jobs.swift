import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Scheduling

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Batch jobs the daemon submitted: list, inspect, cancel.",
        discussion: """
            Each job runs the operations of one queue. Its script and logs live in \
            <state_directory>/jobs/<queue>/<id>/; 'ccat jobs show ID' prints the paths, the operations \
            and the state history.
            """,
        subcommands: [JobsList.self, JobsShow.self, JobsCancel.self],
        defaultSubcommand: JobsList.self
    )
}

extension BatchJobState: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
}

/// `slurm:1234`, `local:7`, or `slurm:-` before the scheduler answered.
func schedulerLabel(_ job: BatchJob) -> String {
    "\(job.scheduler.rawValue):\(job.schedulerJobID ?? "-")\(job.cluster.isEmpty ? "" : "@\(job.cluster)")"
}
