import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import OpsDB
import Postgres

struct StageStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show one request in detail, or all your open requests.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The request id (default: all your open requests).")
    var id: Int64?

    func run() async throws {
        let reports = try await withStagingDatabase(options, "status") { db in
            try await StagingRequestReport.load(db, id: id, includeEnded: id != nil)
        }
        if let id, reports.isEmpty { throw CommandError("staging request \(id) does not exist or is not yours ('ccat stage list' shows yours)") }
        if options.json {
            if id == nil { try printJSON(reports) } else { try printJSON(reports[0]) }
            return
        }
        if reports.isEmpty { print("you have no open staging requests"); return }
        for report in reports { print(Self.describe(report)) }
    }

    static func describe(_ report: StagingRequestReport) -> String {
        var lines = ["request \(report.id): \(report.status.rawValue)"]
        if let selection = report.selection { lines.append("  selection:  \(selection.summary)") }
        lines.append("  location:   \(report.location ?? "-")")
        if let directory = report.directory { lines.append("  directory:  \(directory)") }
        lines.append("  user:       \(report.user ?? report.submittedBy)")
        if let packages = report.packages {
            lines.append("  progress:   \(report.packagesStaged ?? 0)/\(packages) packages, \(formatByteCount(report.bytesStaged ?? 0)) of \(formatByteCount(report.bytes ?? 0))")
        }
        if let reason = report.reason { lines.append("  reason:     \(reason)") }
        lines.append("  submitted:  \(formatTimestamp(report.submittedAt))")
        if let ready = report.readyAt { lines.append("  ready:      \(formatTimestamp(ready))") }
        if let expires = report.expiresAt, [.ready, .failed].contains(report.status) { lines.append("  kept until: \(formatTimestamp(expires)) (or until you release it)") }
        if let released = report.releasedAt { lines.append("  released:   \(formatTimestamp(released))") }
        return lines.joined(separator: "\n")
    }
}
