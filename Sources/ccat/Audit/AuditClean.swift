import ArgumentParser
import Archiving
import CCatCLI
import Foundation
import OpsDB
import Runner
import Storage
import Topology

struct AuditClean: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove the dark objects an audit reported (a dry run unless --execute).",
        discussion: """
            Only objects of the run's DARK findings go, each only if it was last modified longer ago than \
            --older-than, the catalogue still does not know its path, and it still has the size the audit saw. \
            Without --execute nothing is removed: the objects that would be are listed.
            """)

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The audit run's id ('ccat audit list --kind audit').")
    var id: Int64

    @Flag(name: .long, help: "Remove dark objects (the only cleaning there is; it must be asked for by name).")
    var deleteDark = false

    @Option(name: .long, help: ArgumentHelp("Only objects last modified longer ago than this: a number with s, m, h, d or w.", valueName: "duration"))
    var olderThan = "28d"

    @Flag(name: .long, help: "Remove them; without it, only list what would be removed.")
    var execute = false

    func validate() throws {
        guard deleteDark else { throw ValidationError("say what to clean: --delete-dark (objects the catalogue does not know)") }
        guard TopologyParser.parseDuration(olderThan) != nil else {
            throw ValidationError("--older-than '\(olderThan)' is not a duration: use a number with s, m, h, d or w, e.g. 28d")
        }
    }

    struct Removal: Encodable {
        var finding: Int64
        var path: String
        var sizeBytes: Int64?
        var removed: Bool
        var skipped: String?
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.audit")
        let seconds = TopologyParser.parseDuration(olderThan)!
        try await options.withOpsDatabase("ccat audit clean", logger: logger) { db in
            guard let run = try await db.integrityRun(id: id) else { throw CommandError("no integrity run \(id); 'ccat audit list' shows the runs") }
            guard run.kind == .audit, [.completed, .confirmed].contains(run.state) else {
                throw CommandError("run \(id) is a \(run.kind.rawValue) run, \(run.state.rawValue); dark objects are removed only from a COMPLETED "
                                   + "or CONFIRMED audit (a SUSPECT one may have listed the wrong bucket, prefix or file system)")
            }
            let findings = try await db.deletableDarkFindings(runID: id, olderThanSeconds: seconds)
            let target = try await locationStore(for: run.dataLocationID, db, s3: S3Settings())
            var removals: [Removal] = []
            for finding in findings {
                var removal = Removal(finding: finding.id, path: finding.relativePath, sizeBytes: finding.sizeBytes, removed: false)
                if execute {
                    let now = try target.store.head(finding.relativePath)
                    if try await db.isCatalogued(locationID: run.dataLocationID, path: finding.relativePath) {
                        removal.skipped = "the catalogue knows it now"
                    } else if let now, now.size == finding.sizeBytes {
                        // Only the object itself (a store's delete also removes a temporary file of the same name).
                        if let disk = target.store as? DiskStore { try disk.rooted(finding.relativePath).unlinkFile() } else {
                            try target.store.delete(finding.relativePath)
                        }
                        try await db.resolveFinding(finding.id, resolution: "dark object deleted by \(ProcessInfo.processInfo.userName)")
                        removal.removed = true
                    } else if removal.skipped == nil {
                        removal.skipped = now == nil ? "already gone" : "its size changed since the audit (\(now!.size) bytes now)"
                        if now == nil { try await db.resolveFinding(finding.id, resolution: "dark object already gone") }
                    }
                }
                removals.append(removal)
            }
            if options.json { try printJSON(removals); return }
            if removals.isEmpty { print("no dark objects of run \(id) older than \(olderThan) are left to remove"); return }
            for removal in removals {
                let what = execute ? (removal.removed ? "removed" : "kept (\(removal.skipped ?? ""))") : "would remove"
                print("\(what): \(removal.path) (\(removal.sizeBytes.map { formatByteCount($0) } ?? "?"))")
            }
            if !execute { print("dry run: nothing was removed; add --execute to remove these \(removals.count) objects from \(target.store.description)") }
        }
    }
}

struct AuditStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Ask for a fixity pass or an audit of a long-term archive now, instead of waiting for its schedule.")

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("The long-term archive.", valueName: "site:location"))
    var location: LocationName

    @Flag(name: .long, help: "A fixity pass (re-read what is left of today's allowance) instead of an audit.")
    var fixity = false

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.audit")
        try await options.withOpsDatabase("ccat audit start", logger: logger) { db in
            let archive = try await location.resolve(db, type: .longTermArchive)
            let type: OperationType = fixity ? .fixityCheck : .consistencyAudit
            let queue = OperationMatrix.queueName(site: location.site, location: location.location, operation: type)
            guard let operation = try await db.createOperation(type, queue: queue, locationID: archive.id, target: .none) else {
                throw CommandError("a \(type.rawValue) of \(location) is already waiting or running; 'ccat ops list --type \(type.rawValue)' shows it")
            }
            try await db.notifyWork("\(type.rawValue) of \(location) asked for")
            if options.json { try printJSON(operation); return }
            print("operation \(operation.id): \(type.rawValue) of \(location) on queue \(queue); the daemon submits it")
        }
    }
}
