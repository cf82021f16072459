import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

struct Find: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find observations: their files, size, packages and where they are archived.",
        discussion: """
            Select by observation id (--obs, with * and ? as wildcards), instrument (--instrument, \
            'name' or 'name/module') and the time the observation started (--from, --to, ISO 8601). \
            Counts are of the files of the instruments asked for. Stage what you found with \
            'ccat stage request' and the same options; '--dry-run' there says what it would cost.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(name: [.customLong("obs"), .long], parsing: .upToNextOption,
            help: ArgumentHelp("Observation ids or patterns, e.g. 'obs-2026-04*' (repeatable, or comma-separated).", valueName: "pattern"))
    var observation: [String] = []

    @OptionGroup var narrowing: NarrowingOptions

    @Flag(name: .long, help: "Only observations that are wholly archived (every file packaged, every package in a long-term archive).")
    var archived = false

    @Option(name: .long, help: "At most this many observations (1 to 10000).")
    var limit = 200

    func filter() throws -> ObservationFilter {
        let range = try narrowing.timeRange()
        return ObservationFilter(patterns: StageRequest.split(observation), instruments: narrowing.instruments, from: range.from, to: range.to,
                                 archivedOnly: archived, limit: limit)
    }

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000") }
        _ = try filter()
    }

    func run() async throws {
        let filter = try filter()
        let found = try await withStagingDatabase(options, "find") { db in try await db.findObservations(filter) }
        if options.json { try printJSON(found); return }
        guard !found.isEmpty else {
            print("no observation matches\(archived ? " (wholly archived)" : ""); 'ccat find' without options lists the first \(limit)")
            return
        }
        var table = TextTable(["OBSERVATION", "STARTED", "INSTRUMENTS", "FILES", "SIZE", "ARCHIVED", "ARCHIVE SITES"])
        for observation in found {
            var archivedColumn = "\(observation.archivedPackages)/\(observation.packages) packages"
            if observation.unpackagedFiles > 0 { archivedColumn += ", \(observation.unpackagedFiles) files unpackaged" }
            table.append([observation.obsID, observation.startTime.map(formatTimestamp) ?? "-",
                          observation.instruments.isEmpty ? "-" : observation.instruments.joined(separator: ","),
                          String(observation.files), formatByteCount(observation.bytes), archivedColumn,
                          observation.archiveSites.isEmpty ? "-" : observation.archiveSites.joined(separator: ",")])
        }
        print(table.render())
        let files = found.reduce(0) { $0 + $1.files }
        let bytes = found.reduce(Int64(0)) { $0 + $1.bytes }
        print("\(found.count) observation\(found.count == 1 ? "" : "s"), \(files) files, \(formatByteCount(bytes))"
              + (found.count == limit ? "; there may be more: narrow the search or raise --limit" : ""))
    }
}
