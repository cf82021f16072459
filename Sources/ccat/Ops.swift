import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

struct Ops: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Operations (units of runner work): list, inspect, retry, cancel.",
        discussion: """
            An operation is retried automatically with backoff; after its last attempt it waits in \
            'intervention' with its error class and message. 'ccat ops retry ID' starts it again once the \
            cause is fixed. Cancelling stops one operation; the managers create a new one for the same \
            record if it still needs the work, so to stop a location's work deactivate it in the topology.
            """,
        subcommands: [OpsList.self, OpsShow.self, OpsRetry.self, OpsCancel.self],
        defaultSubcommand: OpsList.self
    )
}

extension OperationState: ExpressibleByArgument {}
extension OperationType: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
}

func targetLabel(_ operation: OperationRecord) -> String { operation.target.description }

struct OpsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List operations, most recently changed first.")

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Only operations in this state (repeatable): \(OperationState.allCases.map(\.rawValue).joined(separator: ", ")); 'active' for unfinished ones, 'attention' for failed and intervention.", valueName: "state"))
    var state: [String] = []

    @Option(name: .long, help: "Only operations of this queue.")
    var queue: String?

    @Option(name: .long, help: ArgumentHelp("Only operations of this type, e.g. DATA_TRANSFER.", valueName: "type"))
    var type: OperationType?

    @Option(name: .long, help: "At most this many operations.")
    var limit = 50

    func validate() throws {
        for name in state where !["active", "attention"].contains(name) && OperationState(rawValue: name) == nil {
            throw ValidationError("unknown operation state '\(name)'; use one of: active, attention, \(OperationState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    var states: [OperationState]? {
        if state.isEmpty { return nil }
        return state.flatMap { name -> [OperationState] in
            switch name {
            case "active": return [.pending, .submitted, .running, .failed, .intervention]
            case "attention": return [.failed, .intervention]
            default: return [OperationState(rawValue: name)!]
            }
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.ops")
        try await options.withOpsDatabase("ccat ops list", logger: logger) { db in
            let operations = try await db.operations(states: states, queue: queue, type: type, limit: limit)
            if options.json { try printJSON(operations); return }
            if operations.isEmpty { print("no operations match"); return }
            var table = TextTable(["ID", "TYPE", "QUEUE", "STATE", "ATTEMPTS", "TARGET", "JOB", "UPDATED", "ERROR"])
            for operation in operations {
                let error = operation.state == .succeeded ? "" : [operation.errorClass, operation.lastError.map { String($0.prefix(80)) }]
                    .compactMap { $0 }.joined(separator: ": ")
                table.append([String(operation.id), operation.operationType.rawValue, operation.queue, operation.state.rawValue,
                              "\(operation.attempts)/\(operation.maxAttempts)", targetLabel(operation),
                              operation.batchJobID.map(String.init) ?? "-", formatTimestamp(operation.updatedAt), error])
            }
            print(table.render(), terminator: "")
        }
    }
}

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

struct OpsRetry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Start failed, intervention or cancelled operations again, with fresh attempts.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Operation ids.")
    var ids: [Int64]

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("give at least one operation id") }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.ops")
        try await options.withOpsDatabase("ccat ops retry", logger: logger) { db in
            var retried: [OperationRecord] = []
            var refused: [String] = []
            for id in ids {
                do { retried.append(try await db.retryOperation(id)) } catch let error as OperationChangeRefused { refused.append(error.description) }
            }
            if options.json { try printJSON(retried) } else {
                for operation in retried { print("operation \(operation.id) is pending again") }
            }
            if !refused.isEmpty { throw CommandError(refused.joined(separator: "\n")) }
        }
    }
}

struct OpsCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel pending, failed or intervention operations.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "Operation ids.")
    var ids: [Int64]

    @Option(name: .long, help: "Why; kept with the operation.")
    var reason = "cancelled by an operator"

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("give at least one operation id") }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.ops")
        try await options.withOpsDatabase("ccat ops cancel", logger: logger) { db in
            var cancelled: [OperationRecord] = []
            var refused: [String] = []
            for id in ids {
                do { cancelled.append(try await db.cancelOperation(id, reason: reason)) } catch let error as OperationChangeRefused { refused.append(error.description) }
            }
            if options.json { try printJSON(cancelled) } else {
                for operation in cancelled { print("operation \(operation.id) cancelled") }
            }
            if !refused.isEmpty { throw CommandError(refused.joined(separator: "\n")) }
        }
    }
}
