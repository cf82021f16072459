import Archiving
import ArgumentParser
import CCatCLI
import Foundation
import Logging
import OpsDB
import Postgres
import Storage

struct FilesScan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find new files under a SOURCE location's root, checksum and register them once.",
        discussion: """
            The first directory under the root names the observation: <root>/<obs id>/.../<file>. \
            Hidden files and unfinished copies (*.ccat-partial) are skipped, and so are files \
            modified in the last --settle seconds (an instrument may still be writing them).
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("The SOURCE location, as site:location.", valueName: "site:location"))
    var location: LocationName

    @Option(name: .long, help: ArgumentHelp("Instrument and module for the new files, as instrument/module.", valueName: "instrument/module"))
    var instrument: String?

    @Option(name: .long, help: "Skip files modified less than this many seconds ago.")
    var settle = 10.0

    func validate() throws {
        if let instrument {
            do { try RegistrationRules.checkInstrument(instrument) } catch let violation as RegistrationRules.Violation {
                throw ValidationError("--instrument: \(violation.problem)")
            }
        }
    }

    struct Summary: Encodable {
        var location: String
        var found: Int
        var registered: Int
        var bytes: Int64
        /// Files left unregistered, each with why (a name registration refuses).
        var skipped: [Skipped]
        struct Skipped: Encodable { var path: String; var reason: String }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.files")
        try await withSourceLocation(options, location, command: "scan", logger: logger) { db, source in
            guard case .disk(rootPath: let root) = try await db.storage(of: source) else {
                throw ValidationError("\(location.description) is not on disk; only disk SOURCE locations can be scanned")
            }
            let known = Set(try await db.registeredPaths(sourceLocationID: source.id))
            var summary = Summary(location: location.description, found: 0, registered: 0, bytes: 0, skipped: [])
            let now = Date()
            for entry in try SourceTree.walk(root: root) {
                guard case .file(let relative, _, let modified) = entry else {
                    if case .skipped(let path, let reason) = entry { summary.skipped.append(.init(path: path, reason: reason)) }
                    continue
                }
                summary.found += 1
                guard !known.contains(relative) else { continue }
                if now.timeIntervalSince(modified) < settle { continue }
                let obsID = String(relative.split(separator: "/")[0])
                do {
                    try RegistrationLine(path: relative, size: 0, sha256: "", obsID: obsID, instrument: instrument).check()
                } catch let violation as RegistrationRules.Violation {
                    summary.skipped.append(.init(path: relative, reason: violation.problem))
                    continue
                }
                let checksum = try FileChecksum.sha256(of: RootedPath(root: root, relative: relative))
                let outcome = try await register(db, path: relative, size: checksum.size, sha256: checksum.sha256, obsID: obsID,
                                                 instrument: instrument, at: source, verified: true)
                if outcome.created {
                    summary.registered += 1
                    summary.bytes += checksum.size
                }
            }
            if summary.registered > 0 { try await db.notifyWork("files scanned") }
            if options.json { try printJSON(summary); return }
            print("\(location.description): \(summary.found) files, \(summary.registered) newly registered (\(summary.bytes) bytes)")
            if !summary.skipped.isEmpty {
                print("\(summary.skipped.count) file\(summary.skipped.count == 1 ? "" : "s") not registered (rename or move them, then scan again):")
                for skipped in summary.skipped { print("  \(skipped.path.debugDescription): \(skipped.reason)") }
            }
        }
    }
}
