import ArgumentParser
import CCatCLI
import Foundation
import OpsDB
import Topology

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Fixity checks and consistency audits of the long-term archives: list, inspect, confirm, clean, start.",
        discussion: """
            The daemon re-reads every archive copy within each archive's fixity cycle (FIXITY_CHECK) and \
            compares a listing of its storage with the catalogue every audit interval (CONSISTENCY_AUDIT); \
            copies found lost or corrupted are repaired from another verified copy (ARCHIVE_REPAIR). A run \
            that finds more bad copies than the archive's brake allows is SUSPECT: nothing is marked or \
            repaired until an admin has looked and runs 'ccat audit confirm ID'. Objects the catalogue does \
            not know (dark) are only reported; 'ccat audit clean ID --delete-dark' removes them.
            """,
        subcommands: [AuditList.self, AuditShow.self, AuditConfirm.self, AuditClean.self, AuditStart.self],
        defaultSubcommand: AuditList.self
    )
}

extension IntegrityRunKind: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
}

extension IntegrityRunState: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
}

extension IntegrityFindingKind: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased().replacingOccurrences(of: "-", with: "_")) }
}

/// `site:location` of every location, for tables.
func locationLabels(_ db: OpsDB) async throws -> [Int64: String] {
    let sites = Dictionary(uniqueKeysWithValues: try await db.sites().map { ($0.id, $0.shortName) })
    return Dictionary(uniqueKeysWithValues: try await db.locations().map { ($0.id, "\(sites[$0.siteID] ?? "?"):\($0.name)") })
}

/// The counts of a run, as one cell.
func findingsSummary(_ run: IntegrityRun) -> String {
    switch run.kind {
    case .fixity: "\(run.checkedCopies) checked, \(run.corruptedCount) corrupted, \(run.lostCount) lost"
    case .audit: "\(run.listedObjects) listed, \(run.lostCount) lost, \(run.darkCount) dark, \(run.staleTemporaryCount) stale temporary"
    }
}

struct AuditList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List fixity and audit runs, newest first.")

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Only runs of this location.", valueName: "site:location"))
    var location: LocationName?

    @Option(name: .long, help: ArgumentHelp("Only FIXITY or AUDIT runs.", valueName: "kind"))
    var kind: IntegrityRunKind?

    @Option(name: .long, help: ArgumentHelp("Only runs in this state (repeatable): \(IntegrityRunState.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "state"))
    var state: [IntegrityRunState] = []

    @Option(name: .long, help: "At most this many runs.")
    var limit = 50

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.audit")
        try await options.withOpsDatabase("ccat audit list", logger: logger) { db in
            var locationID: Int64?
            if let location { locationID = try await location.resolve(db, type: .longTermArchive).id }
            let runs = try await db.integrityRuns(locationID: locationID, kind: kind, states: state.isEmpty ? nil : state, limit: limit)
            if options.json { try printJSON(runs); return }
            if runs.isEmpty { print("no fixity or audit runs match"); return }
            let labels = try await locationLabels(db)
            var table = TextTable(["ID", "KIND", "LOCATION", "STATE", "STARTED", "FOUND"])
            for run in runs {
                table.append([String(run.id), run.kind.rawValue, labels[run.dataLocationID] ?? "?", run.state.rawValue,
                              formatTimestamp(run.startedAt), findingsSummary(run)])
            }
            print(table.render(), terminator: "")
            if runs.contains(where: { $0.state == .suspect }) {
                print("SUSPECT runs marked and repaired nothing: look at the storage, then 'ccat audit show ID' and 'ccat audit confirm ID'.")
            }
        }
    }
}

struct AuditShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one run and what it found.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run's id ('ccat audit list').")
    var id: Int64

    @Option(name: .long, help: ArgumentHelp("Only findings of this kind (repeatable): LOST, CORRUPTED, DARK, STALE_TEMPORARY.", valueName: "kind"))
    var finding: [IntegrityFindingKind] = []

    @Option(name: .long, help: "At most this many findings.")
    var limit = 100

    struct Shown: Encodable {
        var run: IntegrityRun
        var location: String
        var findings: [IntegrityFinding]
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.audit")
        try await options.withOpsDatabase("ccat audit show", logger: logger) { db in
            guard let run = try await db.integrityRun(id: id) else { throw CommandError("no integrity run \(id); 'ccat audit list' shows the runs") }
            let findings = try await db.integrityFindings(runID: id, kinds: finding.isEmpty ? nil : finding, limit: limit)
            let location = try await locationLabels(db)[run.dataLocationID] ?? "?"
            if options.json { try printJSON(Shown(run: run, location: location, findings: findings)); return }
            print("run \(run.id): \(run.kind.rawValue) of \(location), \(run.state.rawValue)")
            print("started \(formatTimestamp(run.startedAt))" + (run.finishedAt.map { ", finished \(formatTimestamp($0))" } ?? ""))
            print("catalogued copies: \(run.cataloguedCopies); \(findingsSummary(run))"
                  + (run.kind == .fixity ? "; \(formatByteCount(run.checkedBytes)) read" : ""))
            if let limit = run.brakeLimit { print("brake: more than \(limit) lost or corrupted copies make a run suspect") }
            if let message = run.message { print(message) }
            if let by = run.confirmedBy, let at = run.confirmedAt { print("confirmed by \(by) at \(formatTimestamp(at))") }
            guard !findings.isEmpty else { return }
            var table = TextTable(["FINDING", "KIND", "COPY", "PATH", "SIZE", "DETAIL", "RESOLVED"])
            for item in findings {
                table.append([String(item.id), item.kind.rawValue, item.physicalCopyID.map(String.init) ?? "-", item.relativePath,
                              item.sizeBytes.map(String.init) ?? "-",
                              [item.detail, item.quarantinePath.map { "kept aside at \($0)" }].compactMap { $0 }.joined(separator: "; "),
                              item.resolution.map { "\($0) (\(item.resolvedAt.map(formatTimestamp) ?? ""))" } ?? "-"])
            }
            print(table.render(), terminator: "")
        }
    }
}

struct AuditConfirm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Apply the findings of a SUSPECT run after looking: its copies are marked lost or corrupted and repaired.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The SUSPECT run's id.")
    var id: Int64

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.audit")
        try await options.withOpsDatabase("ccat audit confirm", logger: logger) { db in
            let run: IntegrityRun
            do { run = try await db.confirmIntegrityRun(id) } catch let refusal as IntegrityRunRefused { throw CommandError(refusal.description) }
            if options.json { try printJSON(run); return }
            print("run \(id) confirmed: \(run.lostCount) lost and \(run.corruptedCount) corrupted copies are marked; the daemon repairs them")
        }
    }
}
