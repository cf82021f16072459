import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

struct OpsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One operation: state, target, error, batch job and the log of every attempt.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The operation id.")
    var id: Int64

    struct Log: Encodable {
        var path: String
        var summary: String?
        var at: Date
    }

    struct Detail: Encodable {
        var operation: OperationRecord
        var logs: [Log]
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.ops")
        try await options.withOpsDatabase("ccat ops show", logger: logger) { db in
            guard let operation = try await db.operation(id: id) else {
                throw CommandError("no operation \(id); 'ccat ops list' shows the ids")
            }
            let logs = try await db.operationLogs(id).map { Log(path: $0.path, summary: $0.summary, at: $0.at) }
            if options.json { try printJSON(Detail(operation: operation, logs: logs)); return }
            var lines = [
                "operation \(operation.id)  \(operation.operationType.rawValue)  \(operation.state.rawValue)",
                "queue:      \(operation.queue)",
                "target:     \(targetLabel(operation))",
                "attempts:   \(operation.attempts) of \(operation.maxAttempts)\(operation.state == .pending ? ", next at \(formatTimestamp(operation.nextAttemptAt))" : "")",
                "batch job:  \(operation.batchJobID.map { "\($0) ('ccat jobs show \($0)')" } ?? "-")",
                "runner:     \(operation.leaseOwner ?? "-")\(operation.leaseExpiresAt.map { ", lease until \(formatTimestamp($0))" } ?? "")",
                "bytes:      \(operation.bytesProcessed.map(String.init) ?? "-")",
                "created:    \(formatTimestamp(operation.createdAt))",
                "started:    \(operation.startedAt.map(formatTimestamp) ?? "-")",
                "finished:   \(operation.finishedAt.map(formatTimestamp) ?? "-")",
            ]
            if let errorClass = operation.errorClass { lines.append("error:      \(errorClass): \(operation.lastError ?? "")") }
            if !logs.isEmpty {
                lines.append("")
                lines.append("attempt logs:")
                for log in logs { lines.append("  \(formatTimestamp(log.at))  \(log.path)\(log.summary.map { "  (\($0))" } ?? "")") }
            }
            print(lines.joined(separator: "\n"))
        }
    }
}
