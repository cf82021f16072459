import Archiving
import ArgumentParser
import CCatCLI
import Foundation
import Logging
import OpsDB
import Postgres
import Storage

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
        try await withSourceLocation(options, location, command: "register", logger: logger) { db, source in
            if case .disk(rootPath: let root) = try await db.storage(of: source) {
                var visible = true
                for line in lines where visible {
                    visible = try checkRegisteredFile(root: root, path: line.path, size: line.size, location: location.description)
                }
                if !visible {
                    logger.notice("the location's root is not visible on this host; the files are checked when they are packaged",
                                  metadata: ["location": "\(location.description)", "root": "\(root)"])
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
