import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Scheduling

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
