import ArgumentParser

struct Routes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Routes between sites: automatic ones from the topology, and custom overrides.",
        discussion: """
            Automatic routes: every SOURCE site to every LONG_TERM_ARCHIVE site (primary, chosen \
            round-robin per source site), and between all archive sites (secondary), so every archive \
            site ends up with a copy. A custom route (DIRECT, RELAY or CUSTOM) replaces the automatic \
            route between the same two sites.
            """,
        subcommands: [RoutesList.self, RoutesAdd.self, RoutesRemove.self],
        defaultSubcommand: RoutesList.self
    )
}
