import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

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
