import ArgumentParser
import CCatCLI
import OpsDB
import Postgres
import Topology

struct TopologyShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show the sites and locations in the database."
    )

    @OptionGroup var options: GlobalOptions

    struct SiteOutput: Encodable {
        var shortName: String
        var name: String
        var location: String?
        var locations: [LocationOutput]
    }

    struct LocationOutput: Encodable {
        var name: String
        var type: LocationType
        var storage: StorageOutput
        var priority: Int
        var active: Bool
        var fillThresholdPercent: Int
        var retentionSeconds: Int64?
        var batch: BatchProfile
    }

    struct StorageOutput: Encodable {
        var type: StorageType
        var rootPath: String?
        var endpoint: String?
        var bucket: String?
        var region: String?
        var prefix: String?
        var credentials: String?
        var library: String?
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.topology")
        try await options.withOpsDatabase("ccat topology show", logger: logger) { db in
            let locations = try await db.locations()
            var defaults: [Int64: BatchProfile] = [:]
            for entry in try await db.allSubmissionProfiles() where entry.operation == nil {
                defaults[entry.locationID] = entry.profile
            }
            var output: [SiteOutput] = []
            for site in try await db.sites() {
                var entries: [LocationOutput] = []
                for location in locations where location.siteID == site.id {
                    entries.append(LocationOutput(
                        name: location.name, type: location.locationType, storage: storageOutput(try await db.storage(of: location)),
                        priority: location.priority, active: location.active, fillThresholdPercent: location.fillThresholdPercent,
                        retentionSeconds: location.retentionSeconds, batch: defaults[location.id] ?? BatchProfile()))
                }
                output.append(SiteOutput(shortName: site.shortName, name: site.name, location: site.location, locations: entries))
            }
            if options.json {
                try printJSON(output)
                return
            }
            if output.isEmpty {
                print("no sites yet: apply a topology file with 'ccat topology apply FILE' (see etc/topology.example.yaml)")
                return
            }
            var table = TextTable(["SITE", "LOCATION", "TYPE", "PRIO", "ACTIVE", "FILL%", "STORAGE"])
            for site in output {
                for location in site.locations {
                    table.append([site.shortName, location.name, location.type.rawValue, String(location.priority),
                                  location.active ? "yes" : "no", String(location.fillThresholdPercent), describe(location.storage)])
                }
                if site.locations.isEmpty { table.append([site.shortName, "-", "-", "-", "-", "-", "-"]) }
            }
            print(table.render())
        }
    }

    func storageOutput(_ storage: LocationStorage) -> StorageOutput {
        switch storage {
        case .disk(let root):
            return StorageOutput(type: .disk, rootPath: root)
        case .s3(let endpoint, let bucket, let region, let prefix, let credentials, _):
            return StorageOutput(type: .s3, endpoint: endpoint, bucket: bucket, region: region, prefix: prefix, credentials: credentials)
        case .tape(let library, _):
            return StorageOutput(type: .tape, library: library)
        }
    }

    func describe(_ storage: StorageOutput) -> String {
        switch storage.type {
        case .disk: return "disk \(storage.rootPath ?? "")"
        case .s3: return "s3 \(storage.endpoint ?? "")/\(storage.bucket ?? "")/\(storage.prefix ?? "") (keys from \(storage.credentials ?? "?"))"
        case .tape: return "tape \(storage.library ?? "")"
        }
    }
}
