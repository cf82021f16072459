import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Scheduling

struct JobsCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a batch job; its unfinished operations return to the queue.",
        discussion: """
            The scheduler is asked to cancel the job (scancel, or the local scheduler). The daemon's \
            tracker then records CANCELLED and puts the operations the runner did not finish back to \
            pending, counted as a failed attempt. A job not yet handed to the scheduler is ended here.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The batch job id (the ID column of 'ccat jobs list').")
    var id: Int64

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.jobs")
        let setup = ExecutionSetup(configuration: try options.loadConfiguration())
        try await options.withOpsDatabase("ccat jobs cancel", logger: logger) { db in
            guard let job = try await db.batchJob(id: id) else {
                throw CommandError("no batch job \(id); 'ccat jobs list' shows the ids")
            }
            guard !job.state.isTerminal else {
                throw CommandError("batch job \(id) has already ended (\(job.state.rawValue))")
            }
            let user = ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())"
            guard let submitted = job.submitted else {
                guard job.state == .prepared else {
                    throw CommandError("batch job \(id) is being submitted right now; try again in a minute, once the daemon knows its scheduler id")
                }
                let released = try await db.transaction { db in
                    try await db.endUnsubmittedJob(id, state: .cancelled, reason: "cancelled by \(user) before submission")
                    return try await db.releaseOperations(ofJob: id, countsAsAttempt: false, errorClass: "job_cancelled",
                                                          reason: "cancelled by \(user) before submission", policy: RetryPolicy(baseDelaySeconds: 0))
                }
                try report(["batch_job": "\(id)", "state": "CANCELLED", "operations_released": "\(released.count)"],
                       text: "batch job \(id) cancelled before submission; \(released.count) operation\(released.count == 1 ? "" : "s") back to pending")
                return
            }
            let scheduler = try setup.makeScheduler(job.scheduler, logger: logger)
            try await scheduler.cancel(SubmittedJob(jobID: submitted.jobID, cluster: submitted.cluster))
            try await db.addBatchJobEvent(id, state: job.state, reason: "cancel requested by \(user)")
            try report(["batch_job": "\(id)", "scheduler_job": submitted.jobID, "state": "cancel requested"],
                   text: "cancel requested for batch job \(id) (\(schedulerLabel(job))); the daemon records CANCELLED and returns its unfinished operations to pending")
        }
    }

    func report(_ fields: [String: String], text: String) throws {
        if options.json {
            try printJSON(fields)
        } else {
            print(text)
        }
    }
}
