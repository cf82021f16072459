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
                           _ body: (OpsDB, DataLocation) async throws -> T) async throws -> T {
    try await options.withOpsDatabase("ccat files \(command)", logger: logger) { db in
        try await body(db, try await location.resolve(db, type: .source))
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
