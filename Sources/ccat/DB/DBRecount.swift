import ArgumentParser
import CCatCLI
import OpsDB

struct DBRecount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recount",
        abstract: "Check or rebuild the catalogue's tally: the counts 'ccat status', the status page and /metrics show.",
        discussion: """
            Triggers keep the counts of files, packages, bundles, transfers and copies by state as \
            rows change, so that reading them costs the same however large the catalogue. After a \
            restore, or rows loaded with triggers off (session_replication_role = replica), count \
            them afresh with this command. --check only compares the kept counts with a fresh count \
            and exits with 1 when they differ; a recount is followed by the same check. Each pass \
            reads every row of the catalogue (about 15 s at ten million files); recount with the \
            daemon stopped, since writers wait for it.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Compare the kept counts with a fresh count; change nothing.")
    var check = false

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.db")
        let agrees = try await options.withDatabase(applicationName: "ccat db recount", logger: logger) { connection, _ in
            let db = OpsDB(connection)
            if !check {
                try await db.recountCatalogueTally()
                if !options.json { printError("the catalogue's tally was counted afresh") }
            }
            let result = try await db.checkCatalogueTally()
            if options.json {
                try printJSON(result)
            } else if result.agrees {
                print("the kept counts agree with a fresh count")
            } else {
                print(Self.render(result))
            }
            return result.agrees
        }
        if !agrees { throw ExitCode(1) }
    }

    static func render(_ check: TallyCheck) -> String {
        var table = TextTable(["SUBJECT", "STATE", "LOCATION", "KIND", "KEPT ROWS", "COUNTED ROWS", "KEPT BYTES", "COUNTED BYTES"])
        for difference in check.differences {
            let figure = difference.kept ?? difference.counted
            table.append([figure?.subject ?? "", figure?.state ?? "", figure.map { $0.dataLocationId == 0 ? "" : "\($0.dataLocationId)" } ?? "",
                       figure?.kind ?? "", "\(difference.kept?.rows ?? 0)", "\(difference.counted?.rows ?? 0)",
                       "\(difference.kept?.bytes ?? 0)", "\(difference.counted?.bytes ?? 0)"])
        }
        var out = check.differences.isEmpty ? "" : "the kept counts differ from a fresh count:\n" + table.render()
        if check.packagesWithWrongArchiveSites > 0 {
            out += (out.isEmpty ? "" : "\n") + "\(check.packagesWithWrongArchiveSites) \(check.packagesWithWrongArchiveSites == 1 ? "package keeps" : "packages keep") a wrong number of archive sites "
                + "(e.g. \(check.examplePackageIds.map(String.init).joined(separator: ", ")))"
        }
        return out + "\nrun 'ccat db recount' to count afresh"
    }
}
