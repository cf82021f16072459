import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Postgres
import Scheduling

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
