import Archiving
import ArgumentParser
import CCatCLI
import Foundation
import Logging
import OpsDB
import Postgres
import Storage

struct FilesUnregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unregister",
        abstract: "Withdraw files registered by mistake, before any of their data is archived.",
        discussion: """
            For a path that does not exist, a wrong size or checksum, or a name that should not \
            have been registered. Allowed while the package holding a file (if any) is not yet \
            written and no batch job works on it; that package is withdrawn and its other files \
            are packaged again. The files on disk are left as they are. All or nothing.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("The SOURCE location, as site:location.", valueName: "site:location"))
    var location: LocationName

    @Option(name: .long, help: ArgumentHelp("Path relative to the location's root, as registered (repeatable).", valueName: "path"))
    var path: [String] = []

    @Option(name: .long, help: "Every file of this observation at the location.")
    var obsID: String?

    func validate() throws {
        guard !path.isEmpty || obsID != nil else { throw ValidationError("give --path (one or more) or --obs-id") }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.files")
        try await withSourceLocation(options, location, command: "unregister", logger: logger) { db, source in
            var paths = path
            if let obsID {
                let found = try await db.registeredPaths(sourceLocationID: source.id, obsID: obsID)
                guard !found.isEmpty else { throw ValidationError("no file of observation \(obsID.debugDescription) is registered at \(location.description)") }
                paths += found
            }
            let outcome = try await db.unregisterRawDataFiles(sourceLocationID: source.id, paths: Array(Set(paths)))
            try await db.notifyWork("files unregistered")
            if options.json { try printJSON(outcome); return }
            print("unregistered \(outcome.removed.count) file\(outcome.removed.count == 1 ? "" : "s") at \(location.description)")
            for name in outcome.withdrawnPackages { print("withdrew package \(name); its other files are packaged again") }
        }
    }
}
