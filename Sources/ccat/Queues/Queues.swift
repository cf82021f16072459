import ArgumentParser

struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The queues derived from the topology: one per active location and operation.",
        subcommands: [QueuesList.self],
        defaultSubcommand: QueuesList.self
    )
}
