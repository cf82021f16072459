import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import OpsDB
import Postgres

struct Stage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stage",
        abstract: "Stage archived observations into a PROCESSING location (for scientists).",
        discussion: """
            A request is signed with a munge credential of the calling user; the daemon decodes it, \
            checks that one of your unix groups may stage into the location, and stages every package \
            of your selection from the nearest long-term archive. Files appear under \
            <processing root>/<user>/<request id>/ with their original relative paths, readable by you \
            only. Release a request when you are done ('ccat stage release ID'); its directory is then \
            removed. Unreleased data is removed after the location's retention.
            You connect to the ops database as yourself (a login role in ccat_scientist): you see and \
            change only your own requests.
            """,
        subcommands: [StageRequest.self, StageStatus.self, StageList.self, StageCancel.self, StageRelease.self, StageSlurmJob.self]
    )
}

/// Database errors a scientist can meet, said in their terms.
func stagingError(_ error: any Error, user: String) -> any Error {
    guard let error = error as? PostgresError else { return error }
    switch error.sqlState?.rawValue {
    case "P0002", "55000", "22023":
        return CommandError(error.message + (error.hint.flatMap { $0.isEmpty ? nil : "; \($0)" } ?? ""))
    case "42501":
        return CommandError("database user \(user) may not use staging requests: an administrator must run 'CREATE ROLE \(user) LOGIN IN ROLE ccat_scientist' (or 'GRANT ccat_scientist TO \(user)')")
    case "42P01", "42883":
        return CommandError("the ops database has no staging tables yet; an administrator must run 'ccat db migrate'")
    default:
        return error
    }
}

func currentUserName() -> String {
    if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
    return "uid \(geteuid())"
}

/// Runs a staging command's body with the database, turning permission errors into advice.
func withStagingDatabase<T>(_ options: GlobalOptions, _ name: String, _ body: (OpsDB) async throws -> T) async throws -> T {
    let logger = options.makeLogger(label: "ccat.stage")
    do {
        return try await options.withDatabase(applicationName: "ccat stage \(name)", logger: logger) { connection, _ in
            try await body(OpsDB(connection))
        }
    } catch {
        throw stagingError(error, user: currentUserName())
    }
}

/// A request as `status`, `list` and `--json` show it.
struct StagingRequestReport: Encodable {
    var id: Int64
    var status: StagingRequestStatus
    var selection: StagingSelection?
    var location: String?
    var directory: String?
    var user: String?
    var submittedBy: String
    var reason: String?
    var packages: Int?
    var packagesStaged: Int?
    var bytes: Int64?
    var bytesStaged: Int64?
    var submittedAt: Date
    var readyAt: Date?
    var releasedAt: Date?
    var expiresAt: Date?

    init(_ request: StagingRequest, progress: StagingProgress?, locations: [StagingLocation]) {
        let location = locations.first { $0.id == request.destinationLocationID }
        id = request.id
        status = request.status
        selection = try? StagingSelection.parse(request.selection)
        self.location = location?.name
        let user = request.username ?? request.submittedBy
        directory = location?.rootPath.map { "\($0)/\(user)/\(request.id)" }
        self.user = request.username
        submittedBy = request.submittedBy
        reason = request.reason
        packages = progress.flatMap { $0.packages > 0 ? $0.packages : nil } ?? request.packageCount
        packagesStaged = progress?.packagesStaged
        bytes = progress.flatMap { $0.bytes > 0 ? $0.bytes : nil } ?? request.totalBytes
        bytesStaged = progress?.bytesStaged
        submittedAt = request.submittedAt
        readyAt = request.readyAt
        releasedAt = request.releasedAt
        expiresAt = request.expiresAt
    }

    static func load(_ db: OpsDB, id: Int64? = nil, includeEnded: Bool = true, limit: Int = 200) async throws -> [StagingRequestReport] {
        let requests = try await db.stagingRequests(id: id, includeEnded: includeEnded, limit: limit)
        let progress = try await db.stagingProgress(requestIDs: requests.map(\.id))
        let locations = try await db.stagingLocations()
        return requests.map { StagingRequestReport($0, progress: progress[$0.id], locations: locations) }
    }
}

/// `cancel` and `release`: the database checks that the request is the caller's.
protocol EndStagingCommand: AsyncParsableCommand {
    var options: GlobalOptions { get }
    var id: Int64 { get }
    static var target: StagingRequestStatus { get }
}

extension EndStagingCommand {
    func run() async throws {
        let status = try await withStagingDatabase(options, Self.target == .cancelled ? "cancel" : "release") { db in
            try await db.endStagingRequest(id, as: Self.target)
        }
        if options.json {
            try printJSON(["id": "\(id)", "status": status.rawValue])
        } else {
            print(Self.target == .cancelled ? "staging request \(id) cancelled; anything already staged for it will be removed"
                  : "staging request \(id) released; its directory will be removed")
        }
    }
}

struct StageCancel: EndStagingCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel one of your requests that is not ready yet.")
    static let target = StagingRequestStatus.cancelled
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The request id.") var id: Int64
}

struct StageRelease: EndStagingCommand {
    static let configuration = CommandConfiguration(commandName: "release", abstract: "Say you are done with staged data; its directory is removed.")
    static let target = StagingRequestStatus.released
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The request id.") var id: Int64
}
