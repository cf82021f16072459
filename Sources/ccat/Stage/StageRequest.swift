import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import OpsDB
import Postgres

struct StageRequest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Ask for observations to be staged; prints the request id and where the files will appear.",
        discussion: """
            Select by observation (--obs), raw data package (--package), instrument (--instrument, \
            'name' or 'name/module') and the time the observation started (--from, --to, ISO 8601). \
            Observations and packages add up; instruments and times narrow the selection. Data that is \
            not archived yet is staged as soon as it is.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: [.customLong("obs"), .long], parsing: .upToNextOption, help: ArgumentHelp("Observation ids (repeatable, or comma-separated).", valueName: "obs-id"))
    var observation: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Raw data package names (repeatable, or comma-separated).", valueName: "name"))
    var package: [String] = []

    @OptionGroup var narrowing: NarrowingOptions

    @Option(name: .long, help: ArgumentHelp("The PROCESSING location (default: 'staging_location' in the config file, else the only one there is).", valueName: "name"))
    var location: String?

    @Flag(name: .long, help: "Wait until the data is staged, showing progress; exit 1 if the request fails.")
    var wait = false

    @Flag(name: .long, help: "Say what the request would stage, from which archives, what it does to your quota and how long it would take; submit nothing (exit 1 if it would be over quota).")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("Give up waiting after this many seconds (the request goes on).", valueName: "seconds"))
    var timeout: Double?

    @Option(name: .long, help: ArgumentHelp("Stage for this Slurm job, on behalf of its owner (--for-uid): what the burst-buffer script does as the Slurm user for a '#BB_LUA ccat stage' directive. Asking again for the same job gives the open request.", valueName: "job id"))
    var slurmJob: Int64?

    @Option(name: .long, help: ArgumentHelp("With --slurm-job: the uid of the job's owner, as Slurm told the burst-buffer script.", valueName: "uid"))
    var forUid: UInt32?

    @Flag(name: .long, help: "With --slurm-job: keep the data when the job ends (release it yourself).")
    var keep = false

    @Flag(name: .long, help: "Print only the id of a Slurm job that ends once the data is staged, for 'sbatch --dependency=afterok:ID' (the daemon holds it, releases it when the request is READY, cancels it if the request fails or is cancelled).")
    var slurmDependency = false

    @Option(name: .long, help: ArgumentHelp("munged's socket (default: $CCAT_MUNGE_SOCKET, 'munge_socket' in the config file, else libmunge's default).", valueName: "path"))
    var mungeSocket: String?

    static func split(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    static func parseTime(_ text: String, option: String) throws -> Date {
        let full = ISO8601DateFormatter()
        if let date = full.date(from: text) { return date }
        let noZone = ISO8601DateFormatter()
        noZone.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime]
        if let date = noZone.date(from: text) { return date }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        if let date = day.date(from: text) { return date }
        throw ValidationError("\(option) '\(text)' is not a time: use ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z (times without a zone are UTC)")
    }

    func selection() throws -> StagingSelection {
        let range = try narrowing.timeRange()
        return StagingSelection(observations: Self.split(observation), packages: Self.split(package), instruments: narrowing.instruments,
                                from: range.from, to: range.to)
    }

    func validate() throws {
        if try selection().isEmpty {
            throw ValidationError("say what to stage: --obs, --package, --instrument, --from or --to")
        }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if dryRun && wait { throw ValidationError("--dry-run submits nothing, so there is nothing to --wait for") }
        if (slurmJob == nil) != (forUid == nil) { throw ValidationError("--slurm-job and --for-uid go together: the job, and the uid of its owner") }
        if keep && slurmJob == nil { throw ValidationError("--keep is for --slurm-job requests: other requests are kept until you release them") }
        if let slurmJob, slurmJob <= 0 { throw ValidationError("--slurm-job must be a positive job id") }
        if slurmDependency && (wait || dryRun || slurmJob != nil) {
            throw ValidationError("--slurm-dependency prints a job to depend on: it goes with neither --wait, --dry-run nor --slurm-job")
        }
    }

    func run() async throws {
        let selection = try selection()
        let configuration = try options.loadConfiguration()
        let munge = Munge.fromEnvironment(socket: mungeSocket, configured: configuration?.mungeSocket)
        // The account whose data it is: the caller's, or the Slurm job's owner.
        let user: String, groups: [String]
        if let forUid {
            guard let entry = getpwuid(forUid), let account = UnixAccount.lookup(uid: forUid, gid: entry.pointee.pw_gid) else {
                throw CommandError("uid \(forUid) has no account on this host")
            }
            (user, groups) = (account.name, account.groups)
        } else {
            user = currentUserName()
            groups = UnixAccount.lookup(uid: geteuid(), gid: getegid())?.groups ?? []
        }
        if dryRun {
            let plan = try await withStagingDatabase(options, "request") { db -> StagingPlan in
                let locations = try await db.stagingLocations()
                let target = try Self.chooseLocation(location ?? configuration?.stagingLocation, from: locations)
                let (selected, bytes) = try await Self.checkedSelection(selection, into: target, user: user, groups: groups, db, quota: false)
                return try await StagingPlan.make(selection, into: target, user: user, selected: selected, bytes: bytes, db)
            }
            if options.json { try printJSON(plan) } else { print(plan.render()) }
            if plan.quota?.exceeded == true { throw ExitCode(1) }
            return
        }
        let (id, target) = try await withStagingDatabase(options, "request") { db -> (Int64, StagingLocation) in
            let locations = try await db.stagingLocations()
            let target = try Self.chooseLocation(location ?? configuration?.stagingLocation, from: locations)
            // Asked again for the same job (slurmctld restarted during stage-in): the same request.
            // One with another selection is an older job that had the same id (ids start again
            // when Slurm's state is reset), and is left alone.
            if let slurmJob {
                try await db.lockSlurmJobRequest(slurmJob)
                if let open = try await db.openStagingRequests(slurmJobID: slurmJob).first(where: {
                    $0.destinationLocationID == target.id && (try? StagingSelection.parse($0.selection)) == selection && $0.keepAfterJob == keep
                }) {
                    return (open.id, target)
                }
            }
            let (selected, _) = try await Self.checkedSelection(selection, into: target, user: user, groups: groups, db, quota: true)
            // A Slurm job's request may wait for the daemon: Slurm holds the job meanwhile.
            if slurmJob == nil { try await Self.requireDaemon(db) }
            if !options.json, let forecast = try await Self.archiveForecast(selected, db) {
                printError(forecast)
            }
            let onBehalf = slurmJob.flatMap { job in forUid.map { StagingCredentialPayload.OnBehalf(slurmJob: job, uid: $0, keep: keep) } }
            let payload = StagingCredentialPayload(selection: selection, destination: "\(target.site).\(target.name)", onBehalf: onBehalf,
                                                   slurmDependency: slurmDependency)
            let credential = try munge.encode(try payload.encoded())
            let id = try await db.submitStagingRequest(credential: credential, selection: selection, destinationLocationID: target.id,
                                                       slurmJobID: slurmJob, keepAfterJob: keep, slurmDependency: slurmDependency)
            return (id, target)
        }
        let directory = target.rootPath.map { "\($0)/\(user)/\(id)" }
        if slurmDependency {
            let sentinel = try await Self.waitForSentinel(id, options: options, timeout: timeout ?? 300)
            if options.json {
                try printJSON(["id": "\(id)", "sentinel_job": "\(sentinel)", "location": target.name, "directory": directory ?? ""])
            } else {
                printError("staging request \(id) submitted: \(selection.summary) into \(target.name)\(directory.map { "; files will appear in \($0)" } ?? "")")
                print(sentinel)
            }
            return
        }
        if !wait {
            if options.json {
                try printJSON(["id": "\(id)", "status": StagingRequestStatus.submitted.rawValue, "location": target.name, "directory": directory ?? ""])
            } else {
                print("staging request \(id) submitted: \(selection.summary) into \(target.name)")
                if let directory { print("files will appear in \(directory)") }
                print("follow it with: ccat stage status \(id)")
            }
            return
        }
        if !options.json {
            print("staging request \(id) submitted: \(selection.summary) into \(target.name)")
            if let directory { print("files will appear in \(directory)") }
        }
        let final = try await Self.waitFor(id, options: options, timeout: timeout)
        if options.json { try printJSON(final) }
        switch final.status {
        case .ready:
            if !options.json { print("ready: \(final.directory ?? "the location's directory for request \(id)")") }
        case .submitted, .accepted, .staging:
            if !options.json { print("still \(final.status.rawValue) after \(Int(timeout ?? 0)) s; follow it with: ccat stage status \(id)") }
            throw ExitCode(2)
        default:
            throw CommandError("staging request \(id) is \(final.status.rawValue): \(final.reason ?? "no reason recorded")")
        }
    }

    /// The staging policy's checks, said as the command line's errors: the scientist's groups, the
    /// selection (every name known, something matched) and, with `quota`, the quota.
    static func checkedSelection(_ selection: StagingSelection, into target: StagingLocation, user: String, groups: [String], _ db: OpsDB,
                                 quota: Bool) async throws -> (packages: [SelectedPackage], bytes: Int64) {
        do {
            try StagingPolicy.checkGroups(target, account: user, groups: groups)
            let (selected, bytes) = try await StagingPolicy.select(selection, db)
            if quota { try await StagingPolicy.checkQuota(target, username: user, bytes: bytes, db) }
            return (selected, bytes)
        } catch let refusal as StagingPolicy.Refusal {
            throw CommandError(refusal.description)
        }
    }

    /// The location named by --location or the configuration, else the only active one; the
    /// same rules as the daemon's (`StagingPolicy.location`).
    static func chooseLocation(_ name: String?, from locations: [StagingLocation]) throws -> StagingLocation {
        guard let name else {
            let active = locations.filter(\.active)
            guard active.count == 1 else {
                throw CommandError(active.isEmpty ? "there is no active PROCESSING location to stage into"
                                   : "say which PROCESSING location to stage into: --location NAME (one of: \(active.map(\.name).joined(separator: ", ")))")
            }
            return active[0]
        }
        do {
            return try StagingPolicy.location(named: name, in: locations)
        } catch let refusal as StagingPolicy.Refusal {
            throw CommandError(refusal.description)
        }
    }

    /// The daemon's staging manager must be alive to decode the credential before it expires.
    static func requireDaemon(_ db: OpsDB) async throws {
        guard let heartbeat = try await db.stagingServiceHeartbeat() else {
            throw CommandError("the ccat daemon has never run against this database, so nobody would handle the request; ask your administrator to start it ('ccat daemon'). Nothing was submitted")
        }
        let age = Date().timeIntervalSince(heartbeat.lastSeen)
        if heartbeat.status == "STOPPED" || age > 300 {
            throw CommandError("the ccat daemon is not running (its staging manager was last seen \(formatTimestamp(heartbeat.lastSeen)), \(heartbeat.status)); ask your administrator to start it. Nothing was submitted")
        }
    }

    /// "note: 2 of 5 packages are not archived yet; ... expect them by ...", nil when all of the
    /// selection can be staged now.
    static func archiveForecast(_ selected: [SelectedPackage], _ db: OpsDB) async throws -> String? {
        guard let summary = selected.notStageableYet else { return nil }
        let waiting = selected.filter { !$0.isArchived }
        let latency = try await db.archiveLatencySeconds()
        let unpackaged = waiting.contains { $0.packageID == nil }
        var text = "note: " + summary
        if let latency {
            let newest = waiting.compactMap(\.packageCreatedAt).max() ?? Date()
            let expected = max(newest.addingTimeInterval(latency), Date().addingTimeInterval(unpackaged ? latency : 0))
            text += "; archiving takes about \(StagingProgressLine.duration(latency)) lately, so expect them by \(formatTimestamp(expected))"
        } else {
            text += "; nothing has been archived recently to estimate when"
        }
        return text + ". The request waits and stages them once they are archived."
    }

    /// Waits until the daemon has submitted the request's sentinel job and returns its id.
    static func waitForSentinel(_ id: Int64, options: GlobalOptions, timeout: Double) async throws -> Int64 {
        let deadline = Date().addingTimeInterval(timeout)
        return try await withStagingDatabase(options, "request") { db -> Int64 in
            while true {
                guard let request = try await db.stagingRequests(id: id).first else { throw CommandError("staging request \(id) vanished") }
                if let job = request.sentinelJobID { return job }
                if [.rejected, .cancelled, .expired, .released].contains(request.status) || request.sentinelState == .cancelled {
                    throw CommandError("staging request \(id) is \(request.status.rawValue), so there is no job to depend on: \(request.reason ?? "no reason recorded")")
                }
                if Date() >= deadline {
                    throw CommandError("the daemon did not submit the sentinel job of staging request \(id) within \(Int(timeout)) s ('ccat stage status \(id)' says why)")
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Polls the request until it ends (or `timeout`), drawing progress on standard error.
    static func waitFor(_ id: Int64, options: GlobalOptions, timeout: Double?) async throws -> StagingRequestReport {
        let line = StagingProgressLine(isTerminal: isatty(STDERR_FILENO) == 1)
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var previous: String?
        return try await withStagingDatabase(options, "wait") { db -> StagingRequestReport in
            while true {
                let request = try await db.stagingRequests(id: id).first
                guard let request else { throw CommandError("staging request \(id) does not exist or is not yours") }
                let progress = try await db.stagingProgress(requestIDs: [id])[id]
                let text = line.text(status: request.status, progress: progress, reason: request.reason)
                if let update = line.update(text, status: request.status, progress: progress, reason: request.reason, previousKey: &previous) {
                    FileHandle.standardError.write(Data(update.utf8))
                }
                let ended = ![.submitted, .accepted, .staging].contains(request.status)
                if ended || deadline.map({ Date() >= $0 }) == true {
                    if line.isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
                    return StagingRequestReport(request, progress: progress, locations: try await db.stagingLocations())
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}
