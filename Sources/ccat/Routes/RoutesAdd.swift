import ArgumentParser
import CCatCLI
import OpsDB
import Postgres
import Topology

extension RouteType: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    public static var allValueStrings: [String] { allCases.map { $0.rawValue.lowercased() } }
}

extension TransferMethod: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    public static var allValueStrings: [String] { allCases.map { $0.rawValue.lowercased() } }
}

struct RoutesAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a custom route that overrides the automatic one between two sites.",
        discussion: """
            direct: skip the destination buffer and deliver into its long-term archive.
            relay:  go through an intermediate site (--via), two transfers.
            custom: a fixed location-to-location transfer (--from-location and --to-location as SITE.LOCATION).
            Examples:
              ccat routes add ccat_to_us_via_cologne --type relay --from ccat --to us --via cologne
              ccat routes add ccat_to_cologne_bbcp --type custom --from-location ccat.buffer --to-location cologne.buffer_secondary --method bbcp
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "A unique name for the route.") var name: String
    @Option(name: .long, help: "direct, relay or custom.") var type: RouteType
    @Option(name: .long, help: "Origin site (short name).") var from: String?
    @Option(name: .long, help: "Destination site (short name).") var to: String?
    @Option(name: .long, help: "Intermediate site of a relay route.") var via: String?
    @Option(name: .customLong("from-location"), help: "SITE.LOCATION the data leaves from (custom, optional for direct).") var fromLocation: String?
    @Option(name: .customLong("to-location"), help: "SITE.LOCATION the data goes to (custom; for direct, an archive location).") var toLocation: String?
    @Option(name: .long, help: "Transfer method: copy, rsync, bbcp or s3 (default copy).") var method: TransferMethod = .copy

    func validate() throws {
        switch type {
        case .relay:
            guard from != nil, to != nil, via != nil else { throw ValidationError("a relay route needs --from, --to and --via") }
            guard fromLocation == nil, toLocation == nil else { throw ValidationError("a relay route goes buffer to buffer; --from-location/--to-location do not apply") }
        case .custom:
            guard fromLocation != nil, toLocation != nil else { throw ValidationError("a custom route needs --from-location and --to-location (SITE.LOCATION)") }
            guard via == nil else { throw ValidationError("--via only applies to relay routes") }
        case .direct:
            guard from != nil || fromLocation != nil, to != nil || toLocation != nil else { throw ValidationError("a direct route needs --from and --to (or the -location forms)") }
            guard via == nil else { throw ValidationError("--via only applies to relay routes") }
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.routes")
        try await options.withOpsDatabase("ccat routes add", logger: logger) { db in
            let sites = try await db.sites()
            func site(_ shortName: String) throws -> Site {
                guard let site = sites.first(where: { $0.shortName == shortName }) else {
                    throw CommandError("unknown site '\(shortName)' (sites: \(sites.map(\.shortName).joined(separator: ", ")))")
                }
                return site
            }
            func location(_ reference: String) async throws -> DataLocation {
                let parts = reference.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw CommandError("'\(reference)' must be SITE.LOCATION, e.g. cologne.buffer") }
                _ = try site(parts[0])
                guard let location = try await db.location(siteShortName: parts[0], name: parts[1]) else {
                    throw CommandError("site '\(parts[0])' has no location '\(parts[1])' (see 'ccat topology show')")
                }
                return location
            }
            let originLocation = try await fromLocation.asyncMap(location)
            let destinationLocation = try await toLocation.asyncMap(location)
            func siteOf(_ location: DataLocation?, else shortName: String?) throws -> Site {
                if let location, let owner = sites.first(where: { $0.id == location.siteID }) { return owner }
                return try site(shortName ?? "")
            }
            let origin = try siteOf(originLocation, else: from)
            let destination = try siteOf(destinationLocation, else: to)
            if let from, from != origin.shortName { throw CommandError("--from \(from) does not match --from-location \(fromLocation!)") }
            if let to, to != destination.shortName { throw CommandError("--to \(to) does not match --to-location \(toLocation!)") }
            guard origin.id != destination.id else { throw CommandError("origin and destination are the same site (\(origin.shortName))") }
            let relay = try via.map(site)
            if let relay, relay.id == origin.id || relay.id == destination.id {
                throw CommandError("--via must be a third site, not \(relay.shortName)")
            }
            if type == .direct, let destinationLocation, destinationLocation.locationType != .longTermArchive {
                throw CommandError("a direct route delivers into a LONG_TERM_ARCHIVE; \(toLocation!) is \(destinationLocation.locationType.rawValue)")
            }
            if try await db.routes().contains(where: { $0.name == name }) {
                throw CommandError("a route named '\(name)' already exists; remove it first with 'ccat routes remove \(name)'")
            }
            let route = try await db.insertRoute(name: name, originSiteID: origin.id, destinationSiteID: destination.id, type: type,
                                                 relaySiteID: relay?.id, originLocationID: originLocation?.id,
                                                 destinationLocationID: destinationLocation?.id, method: method)
            try await db.notifyWork("routes changed")
            let planned = try await RouteTable.load(db).route(from: origin.shortName, to: destination.shortName)
            if options.json {
                try printJSON(planned)
            } else {
                print("added route \(route.name): \(origin.shortName) -> \(destination.shortName), \(planned.hops.count) hop\(planned.hops.count == 1 ? "" : "s"), \(method.rawValue.lowercased())")
            }
        }
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
