import Archiving
import ArgumentParser
import CCatCLI
import Foundation
import Logging
import OpsDB
import Postgres
import Storage

struct Files: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register instrument files at a SOURCE location.",
        subcommands: [FilesRegister.self, FilesScan.self, FilesUnregister.self]
    )
}

/// `site:location`, e.g. `ccat:instrument_data`.
struct LocationName: ExpressibleByArgument, Sendable {
    var site: String
    var location: String

    init?(argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        site = parts[0]
        location = parts[1]
    }

    var description: String { "\(site):\(location)" }

    func resolve(_ db: OpsDB, type: LocationType) async throws -> DataLocation {
        guard let found = try await db.location(siteShortName: site, name: location) else {
            throw ValidationError("no location \(description); 'ccat topology show' lists them")
        }
        guard found.locationType == type else {
            throw ValidationError("\(description) is a \(found.locationType.rawValue) location; files are registered at a \(type.rawValue) location")
        }
        return found
    }
}

/// What every `ccat files` subcommand starts with: the database, on the current schema, and the
/// SOURCE location named on the command line.
func withSourceLocation<T>(_ options: GlobalOptions, _ location: LocationName, command: String, logger: Logger,
                           _ body: (OpsDB, DataLocation, PostgresConnection) async throws -> T) async throws -> T {
    try await options.withOpsDatabase("ccat files \(command)", logger: logger) { db in
        return try await body(db, try await location.resolve(db, type: .source), db.connection)
    }
}

struct RegisterOutcome: Encodable {
    var path: String
    var fileID: Int64
    var created: Bool
}

/// The names of one registration, checked against RegistrationRules before anything is written.
/// A registered file that is not what packaging will find: missing, a link, or another size.
struct RegisteredFileProblem: Error, CustomStringConvertible {
    var description: String
}

/// Where the SOURCE root is visible on this host, the file must be there as registered: a regular
/// file (no symbolic link at any component, which packaging would refuse or, worse, follow out of
/// the root), of the registered size. Returns false when the root is not visible here (the DAQ
/// registers from another host): packaging checks the file then.
@discardableResult
func checkRegisteredFile(root: String, path: String, size: Int64, location: String) throws -> Bool {
    var info = stat()
    // The root itself may be a link (to a mount); below it, none may be.
    guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return false }
    var current = root
    let components = path.split(separator: "/")
    for (index, component) in components.enumerated() {
        current += "/" + component
        guard lstat(current, &info) == 0 else {
            throw RegisteredFileProblem(description: "\(path) does not exist under \(root), the root of \(location) (\(String(cString: strerror(errno)))); register a file once it is written")
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK {
            throw RegisteredFileProblem(description: "\(current) is a symbolic link; files under a location's root are never read through links: register the file itself, inside the root")
        }
        if index < components.count - 1, type != S_IFDIR {
            throw RegisteredFileProblem(description: "\(current) is not a directory")
        }
        if index == components.count - 1, type != S_IFREG {
            throw RegisteredFileProblem(description: "\(current) is not a regular file")
        }
    }
    guard Int64(info.st_size) == size else {
        throw RegisteredFileProblem(description: "\(path) has \(info.st_size) bytes under \(root), not the \(size) registered; register it once it is completely written")
    }
    return true
}

/// Registers one file whose names passed `RegistrationLine.check` (each caller checks them first, to
/// report a line number or skip a file before any work); an existing registration with another
/// checksum is an error, not an update.
func register(_ db: OpsDB, path: String, size: Int64, sha256: String, obsID: String, instrument: String?,
              at source: DataLocation, verified: Bool) async throws -> RegisterOutcome {
    let observation = try await db.upsertObservation(obsID: obsID)
    var module: Int64?
    if let instrument {
        let parts = instrument.split(separator: "/", maxSplits: 1).map(String.init)
        module = try await db.upsertInstrumentModule(instrument: parts[0], name: parts.count > 1 ? parts[1] : parts[0]).id
    }
    let result = try await db.registerRawDataFile(NewRawDataFile(relativePath: path, sizeBytes: size, checksum: sha256.lowercased(),
                                                                 executedObsUnitID: observation.id, instrumentModuleID: module,
                                                                 sourceLocationID: source.id), verified: verified)
    if !result.created && (result.file.checksum != sha256.lowercased() || result.file.sizeBytes != size) {
        throw ValidationError("\(path) is registered already with \(result.file.sizeBytes) bytes, sha256 \(result.file.checksum); now \(size) bytes, sha256 \(sha256). A file must not change after registration: write it under a new name")
    }
    return RegisterOutcome(path: path, fileID: result.file.id, created: result.created)
}

struct FilesRegister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register files an instrument wrote (the DAQ hook).",
        discussion: """
            One file from the options, or many with --batch FILE ('-' for standard input), one per line, \
            tab-separated: relative path, size in bytes, SHA-256, observation id, and optionally \
            instrument/module. Registering a file again with the same size and checksum is a no-op.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp("The SOURCE location, as site:location.", valueName: "site:location"))
    var location: LocationName

    @Option(name: .long, help: "Path of the file relative to the location's root.")
    var path: String?

    @Option(name: .long, help: "Size in bytes.")
    var size: Int64?

    @Option(name: .long, help: "SHA-256 of the file, as sha256sum prints it.")
    var sha256: String?

    @Option(name: .long, help: "The observation (executed obs unit) the file belongs to.")
    var obsID: String?

    @Option(name: .long, help: ArgumentHelp("Instrument and module, as instrument/module.", valueName: "instrument/module"))
    var instrument: String?

    @Option(name: .long, help: ArgumentHelp("Tab-separated lines to register ('-' for standard input).", valueName: "file"))
    var batch: String?

    func validate() throws {
        if batch == nil {
            guard path != nil, size != nil, sha256 != nil, obsID != nil else {
                throw ValidationError("give --path, --size, --sha256 and --obs-id, or --batch FILE")
            }
        }
        if let sha256, !RegistrationRules.isSHA256(sha256) {
            throw ValidationError("--sha256 must be 64 hexadecimal digits")
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.files")
        var lines: [RegistrationLine] = []
        if let batch {
            let text: String
            if batch == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                do { text = try String(contentsOfFile: batch, encoding: .utf8) } catch {
                    throw ValidationError("cannot read \(batch): \(error.localizedDescription)")
                }
            }
            do {
                lines = try RegistrationLine.parse(text)
            } catch let refused as RegistrationLine.Refused {
                throw ValidationError("line \(refused.line) of \(batch): \(refused.problem); nothing was registered")
            }
        } else {
            let line = RegistrationLine(path: path!, size: size!, sha256: sha256!.lowercased(), obsID: obsID!, instrument: instrument)
            do {
                try line.check()
            } catch let violation as RegistrationRules.Violation {
                throw ValidationError("\(violation); nothing was registered")
            }
            lines = [line]
        }
        try await withSourceLocation(options, location, command: "register", logger: logger) { db, source, connection in
            if case .disk(rootPath: let root) = try await db.storage(of: source) {
                var visible = true
                for line in lines where visible {
                    visible = try checkRegisteredFile(root: root, path: line.path, size: line.size, location: location.description)
                }
                if !visible {
                    logger.notice("the root \(root) of \(location.description) is not visible on this host; the files are checked when they are packaged")
                }
            }
            var outcomes: [RegisterOutcome] = []
            // All or nothing: a bad line leaves no half-registered batch behind.
            try await db.transaction { db in
                for line in lines {
                    outcomes.append(try await register(db, path: line.path, size: line.size, sha256: line.sha256, obsID: line.obsID, instrument: line.instrument,
                                                       at: source, verified: false))
                }
                try await db.notifyWork("files registered")
            }
            if options.json { try printJSON(outcomes); return }
            let created = outcomes.filter(\.created).count
            print("registered \(created) new file\(created == 1 ? "" : "s") at \(location.description) (\(outcomes.count - created) already known)")
        }
    }
}

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
        try await withSourceLocation(options, location, command: "scan", logger: logger) { db, source, connection in
            guard case .disk(rootPath: let root) = try await db.storage(of: source) else {
                throw ValidationError("\(location.description) is not on disk; only disk SOURCE locations can be scanned")
            }
            let known = Set(try await connection.query("SELECT relative_path FROM raw_data_file WHERE source_location_id = \(source.id)")
                .map { try $0["relative_path"] as String })
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
        try await withSourceLocation(options, location, command: "unregister", logger: logger) { db, source, connection in
            var paths = path
            if let obsID {
                let found = try await connection.query("""
                    SELECT f.relative_path FROM raw_data_file f JOIN executed_obs_unit o ON o.id = f.executed_obs_unit_id
                    WHERE f.source_location_id = \(source.id) AND o.obs_id = \(obsID)
                    """).map { try $0["relative_path"] as String }
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
