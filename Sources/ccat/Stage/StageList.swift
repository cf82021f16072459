import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import OpsDB
import Postgres

struct StageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List your staging requests, newest first (a staging admin sees everyone's).")

    @OptionGroup var options: GlobalOptions

    @Flag(name: .long, help: "Only requests that are not finished (hide rejected, cancelled, released, expired).")
    var open = false

    @Option(name: .long, help: "At most this many requests.")
    var limit = 50

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let reports = try await withStagingDatabase(options, "list") { db in
            try await StagingRequestReport.load(db, includeEnded: !open, limit: limit)
        }
        if options.json { try printJSON(reports); return }
        if reports.isEmpty { print("no staging requests"); return }
        var table = TextTable(["ID", "STATUS", "USER", "LOCATION", "PACKAGES", "BYTES", "SUBMITTED", "SELECTION"])
        for report in reports {
            let packages = report.packages.map { "\(report.packagesStaged ?? 0)/\($0)" } ?? "-"
            table.append([String(report.id), report.status.rawValue, report.user ?? report.submittedBy, report.location ?? "-", packages,
                          report.bytes.map(formatByteCount) ?? "-", formatTimestamp(report.submittedAt), report.selection?.summary ?? "-"])
        }
        print(table.render())
    }
}
