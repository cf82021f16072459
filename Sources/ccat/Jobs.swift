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

struct JobsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List batch jobs, newest first.")

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: "Only jobs of this queue.")
    var queue: String?

    @Option(name: .long, help: ArgumentHelp("Only jobs in this state (repeatable): \(BatchJobState.allCases.map(\.rawValue).joined(separator: ", ")); 'active' for every unfinished one.", valueName: "state"))
    var state: [String] = []

    @Option(name: .long, help: "At most this many jobs.")
    var limit = 50

    func validate() throws {
        for name in state where name.lowercased() != "active" && BatchJobState(argument: name) == nil {
            throw ValidationError("unknown job state '\(name)'; use one of: active, \(BatchJobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    struct Row: Encodable {
        var job: BatchJob
        var operations: Int
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.jobs")
        try await options.withOpsDatabase("ccat jobs list", logger: logger) { db in
            var states: [BatchJobState]? = nil
            if !state.isEmpty {
                states = state.flatMap { $0.lowercased() == "active" ? OpsDB.activeJobStates : [BatchJobState(argument: $0)!] }
            }
            let jobs = try await db.batchJobs(queue: queue, states: states, limit: limit)
            let counts = try await db.operationCounts(batchJobIDs: jobs.map(\.id))
            if options.json {
                try printJSON(jobs.map { Row(job: $0, operations: counts[$0.id] ?? 0) })
                return
            }
            if jobs.isEmpty {
                print("no batch jobs\(queue.map { " in queue \($0)" } ?? "")\(state.isEmpty ? "" : " in state \(state.joined(separator: ", "))")")
                return
            }
            var table = TextTable(["ID", "QUEUE", "SCHEDULER", "STATE", "OPS", "CREATED", "ENDED", "NODE", "EXIT", "REASON"])
            for job in jobs {
                table.append([
                    String(job.id), job.queue, schedulerLabel(job), job.state.rawValue, String(counts[job.id] ?? 0),
                    formatTimestamp(job.createdAt), job.endedAt.map(formatTimestamp) ?? "-", job.node ?? "-",
                    job.exitCode.map { "\($0)\(job.exitSignal.map { ":\($0)" } ?? "")" } ?? "-", job.reason ?? "",
                ])
            }
            print(table.render())
        }
    }
}

struct JobsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One batch job: script and log paths, operations, state history.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The batch job id (the ID column of 'ccat jobs list', not the Slurm job id).")
    var id: Int64

    struct Detail: Encodable {
        var job: BatchJob
        var operations: [OperationRecord]
        var events: [BatchJobEvent]
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.jobs")
        try await options.withOpsDatabase("ccat jobs show", logger: logger) { db in
            guard let job = try await db.batchJob(id: id) else {
                throw CommandError("no batch job \(id); 'ccat jobs list' shows the ids")
            }
            let detail = Detail(job: job, operations: try await db.operations(batchJobID: id), events: try await db.batchJobEvents(id))
            if options.json {
                try printJSON(detail)
                return
            }
            var lines = [
                "batch job \(job.id)  \(job.state.rawValue)\(job.reason.map { " (\($0))" } ?? "")",
                "queue:      \(job.queue)",
                "scheduler:  \(schedulerLabel(job))  submit token \(job.submitToken.uuidString.lowercased())",
                "script:     \(job.scriptPath)",
                "stdout:     \(job.stdoutPath ?? "-")",
                "stderr:     \(job.stderrPath ?? "-")",
                "node:       \(job.node ?? "-")",
                "exit:       \(job.exitCode.map(String.init) ?? "-")\(job.exitSignal.map { " signal \($0)" } ?? "")",
                "submitted:  \(job.submittedAt.map(formatTimestamp) ?? "-")  (\(job.submitAttempts) sbatch call\(job.submitAttempts == 1 ? "" : "s"))",
                "started:    \(job.startedAt.map(formatTimestamp) ?? "-")",
                "ended:      \(job.endedAt.map(formatTimestamp) ?? "-")",
                "",
            ]
            var operations = TextTable(["OPERATION", "TYPE", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "ERROR"])
            for operation in detail.operations {
                operations.append([String(operation.id), operation.operationType.rawValue, operation.state.rawValue,
                                   "\(operation.attempts)/\(operation.maxAttempts)",
                                   operation.state == .pending ? formatTimestamp(operation.nextAttemptAt) : "-",
                                   [operation.errorClass, operation.lastError].compactMap { $0 }.joined(separator: ": ")])
            }
            lines.append(detail.operations.isEmpty ? "no operations" : operations.render())
            lines.append("")
            var history = TextTable(["AT", "STATE", "REASON"])
            for event in detail.events { history.append([formatTimestamp(event.at), event.state.rawValue, event.reason ?? ""]) }
            lines.append(history.render())
            print(lines.joined(separator: "\n"))
        }
    }
}

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
