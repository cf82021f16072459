import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

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
