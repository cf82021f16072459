import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

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
