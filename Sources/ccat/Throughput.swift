import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Topology

struct Throughput: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bytes moved per link (origin -> destination location) and kind of work over a period.",
        discussion: """
            Every attempt of a transfer between buffers, an archiving, a staging or a repair is kept \
            with its bytes, seconds and outcome; after 30 days the daemon folds them into daily totals \
            per link, so any period can be read. RATE is bytes over the seconds the successful attempts \
            took, not over the period.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The period, back from now: a number with s, m, h, d or w, e.g. 7d (default 24h).",
                                            valueName: "duration"))
    var since = "24h"

    func validate() throws {
        guard let seconds = TopologyParser.parseDuration(since), seconds > 0 else {
            throw ValidationError("--since '\(since)' is not a duration above 0: use a number with s, m, h, d or w, e.g. 7d")
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.throughput")
        let seconds = TopologyParser.parseDuration(since)!
        try await options.withOpsDatabase("ccat throughput", logger: logger) { db in
            let links = try await db.linkThroughput(since: Date().addingTimeInterval(-Double(seconds)))
            if options.json { try printJSON(links); return }
            if links.isEmpty { print("nothing moved in the last \(since)"); return }
            var table = TextTable(["ORIGIN", "DESTINATION", "WORK", "ATTEMPTS", "FAILED", "BYTES", "RATE"])
            for link in links {
                table.append([link.origin ?? "?", link.destination, link.operationType.rawValue, String(link.attempts), String(link.failures),
                              formatByteCount(link.bytes), link.bytesPerSecond.map { "\(formatByteCount(Int64($0)))/s" } ?? "-"])
            }
            print(table.render(), terminator: "")
        }
    }
}
