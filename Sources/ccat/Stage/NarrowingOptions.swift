import ArgumentParser
import Foundation

/// What narrows a selection of observations, for `ccat find` and `ccat stage request` alike: the
/// instruments (or modules) and when the observation started.
struct NarrowingOptions: ParsableArguments {
    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Only files of these instruments ('instrument' or 'instrument/module').", valueName: "name"))
    var instrument: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only observations that started at or after this time (ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z).", valueName: "time"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("Only observations that started before this time.", valueName: "time"))
    var to: String?

    var instruments: [String] { StageRequest.split(instrument) }

    /// The time range, checked: times parse, and --to comes after --from.
    func timeRange() throws -> (from: Date?, to: Date?) {
        let range = (from: try from.map { try StageRequest.parseTime($0, option: "--from") },
                     to: try to.map { try StageRequest.parseTime($0, option: "--to") })
        if let from = range.from, let to = range.to, to <= from { throw ValidationError("--to must be after --from") }
        return range
    }
}
