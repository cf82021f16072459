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
