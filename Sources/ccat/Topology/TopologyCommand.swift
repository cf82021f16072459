import ArgumentParser

struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Sites and locations: apply a topology file, show what the database holds.",
        discussion: "See etc/topology.example.yaml for the file format.",
        subcommands: [TopologyApply.self, TopologyShow.self]
    )
}
