import Auth
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif
import OpsDB
import Postgres
import Processes
import Scheduling

/// Turns scientists' requests into staging jobs and follows them to the end.
///
/// SUBMITTED: the munge credential is decoded here (uid, gid, expiry, replay); the request is
/// REJECTED with a reason a scientist can act on, or ACCEPTED. ACCEPTED: waits until every selected
/// file is in an archived package, then becomes STAGING with its jobs. STAGING: READY when every
/// job completed, FAILED when one needs an administrator. READY and FAILED requests expire after
/// the location's retention; ended requests' directories are removed by the deletion manager.
struct StagingRequestCycle {
    let settings: ManagerSettings

    func run(_ db: OpsDB, logger: Logger) async throws -> Int {
        var changed = 0
        // PROCESSING locations and unhealthy archives, read once per cycle for every request.
        let locations = try await db.stagingLocations()
        changed += try await decodeSubmitted(db, locations: locations, logger: logger)
        let accepted = try await db.stagingRequests(in: [.accepted], limit: settings.batchSize)
        let unreachable = accepted.isEmpty ? [] : try await db.unreachableLocations()
        for request in accepted {
            changed += try await startIfArchived(request, unreachable: unreachable, db, logger: logger)
        }
        for request in try await db.stagingRequests(in: [.staging, .failed], limit: settings.batchSize) {
            let keep = locations.first { $0.id == request.destinationLocationID }?.retentionSeconds ?? settings.stagingRetentionSeconds
            changed += try await follow(request, keepSeconds: keep, db, logger: logger)
        }
        let expired = try await db.expireStagingRequests()
        if expired > 0 { logger.info("staging requests expired", metadata: ["count": "\(expired)"]) }
        changed += expired
        changed += try await db.cancelStagingForEndedRequests()
        changed += try await tendSentinels(db, logger: logger)
        return changed
    }

    // MARK: Sentinel jobs (--slurm-dependency)

    /// Submits the sentinel of each accepted request that asked for one, releases it once the
    /// request is READY, cancels it when the request ends otherwise. Slurm's trouble leaves the
    /// request as it is for the next cycle.
    private func tendSentinels(_ db: OpsDB, logger: Logger) async throws -> Int {
        var changed = 0
        for request in try await db.requestsWithSentinelWork(limit: settings.batchSize) {
            var log = logger
            log[metadataKey: "staging_request"] = "\(request.id)"
            guard let sentinels = settings.sentinels else {
                if request.sentinelJobID == nil {
                    try await db.setStagingRequestReason(request.id, "no sentinel job: the daemon does not use Slurm (--slurm-dependency needs scheduler: slurm)")
                    try await db.recordSentinel(requestID: request.id, job: nil, state: .cancelled)
                    changed += 1
                }
                continue
            }
            do {
                if let job = request.sentinelJobID {
                    if request.status == .ready {
                        try await sentinels.release(job, request: request.id)
                        try await db.recordSentinel(requestID: request.id, job: nil, state: .released)
                        log.info("sentinel job released", metadata: ["slurm_job": "\(job)"])
                    } else {
                        try await sentinels.cancel(job, request: request.id)
                        try await db.recordSentinel(requestID: request.id, job: nil, state: .cancelled)
                        log.info("sentinel job cancelled", metadata: ["slurm_job": "\(job)", "status": "\(request.status.rawValue)"])
                    }
                } else if let location = request.destinationLocationID {
                    let profiles = try await db.submissionProfiles(locationID: location)
                    let ready = request.status == .ready
                    let job = try await sentinels.submit(request: request.id, profile: profiles[.staging] ?? profiles[nil], held: !ready)
                    try await db.recordSentinel(requestID: request.id, job: job, state: ready ? .released : .held)
                    log.info("sentinel job submitted", metadata: ["slurm_job": "\(job)", "held": "\(!ready)"])
                }
                changed += 1
            } catch let error as SentinelError where error.jobGone {
                // Someone else ended it: nothing left to release or cancel.
                try await db.recordSentinel(requestID: request.id, job: nil, state: .cancelled)
                log.warning("sentinel job was already gone", metadata: ["error": "\(error)"])
            } catch let error as SentinelError {
                log.warning("sentinel job not handled", metadata: ["error": "\(error)"])
            } catch let error as CommandRunError {
                // sbatch, squeue or scancel did not run or did not answer in time: try again next
                // cycle, without holding up the other requests.
                log.warning("sentinel job not handled", metadata: ["error": "\(error)"])
            }
        }
        return changed
    }

    // MARK: SUBMITTED

    /// One transaction per request: munged remembers every credential it decoded, so a decision
    /// must never be rolled back together with others.
    private func decodeSubmitted(_ db: OpsDB, locations: [StagingLocation], logger: Logger) async throws -> Int {
        var changed = 0
        var after: Int64 = 0
        for _ in 0..<settings.batchSize {
            let next: Int64? = try await db.transaction { db in
                guard let (request, credential, digest) = try await db.nextStagingRequestToDecode(after: after) else { return nil }
                if try await decide(request, credential: credential, digest: digest, locations: locations, db, logger: logger) { changed += 1 }
                return request.id
            }
            guard let next else { break }
            after = next
        }
        return changed
    }

    /// False when munged cannot be reached: the request stays SUBMITTED for the next cycle.
    private func decide(_ request: StagingRequest, credential: String, digest: String, locations: [StagingLocation], _ db: OpsDB,
                        logger: Logger) async throws -> Bool {
        var log = logger
        log[metadataKey: "staging_request"] = "\(request.id)"
        log[metadataKey: "submitted_by"] = "\(request.submittedBy)"
        func reject(_ reason: String, uid: UInt32? = nil, gid: UInt32? = nil, username: String? = nil) async throws -> Bool {
            log.warning("staging request rejected", metadata: ["reason": "\(reason)"])
            try await db.rejectStagingRequest(request.id, reason: reason, uid: uid, gid: gid, username: username)
            return true
        }
        // A credential is accepted once per database, whatever munged remembers.
        if let first = try await db.requestWithSameCredential(digest: digest, before: request.id) {
            return try await reject("the munge credential was already used by request \(first): replayed credentials are refused")
        }
        let identity: MungeIdentity
        do {
            identity = try settings.munge.decode(credential)
        } catch let error as MungeError where error.kind == .replayed && error.identity != nil {
            // munged saw it, but no earlier request carried it: this daemon decoded it before and
            // its decision was not kept (a crash, a lost connection). Decide again.
            identity = error.identity!
        } catch let error as MungeError where error.isCredentialProblem {
            let whose = error.uid.map { " (of uid \($0))" } ?? ""
            switch error.kind {
            case .expired:
                return try await reject("the munge credential expired\(whose) before the daemon read it; submit the request again")
            case .replayed:
                return try await reject("the munge credential was used before\(whose): replayed credentials are refused")
            case .rewound:
                return try await reject("the munge credential was made in the future\(whose): the clocks of the login node and the daemon host disagree")
            case .invalid:
                return try await reject("the munge credential is not valid here: it was not made with this cluster's munge key")
            case .malformed:
                return try await reject("the credential is not a munge credential")
            default:
                return try await reject("the munge credential was refused: \(error.message)")
            }
        } catch {
            log.error("cannot decode staging request credentials", metadata: ["error": "\(error)"])
            return false
        }
        guard let payload = try? StagingCredentialPayload.decode(identity.payload), payload.version == 1 else {
            return try await reject("the credential carries no staging request this daemon understands", uid: identity.uid, gid: identity.gid)
        }
        guard let account = UnixAccount.lookup(uid: identity.uid, gid: identity.gid) else {
            return try await reject("uid \(identity.uid) has no account on the daemon's host", uid: identity.uid, gid: identity.gid)
        }
        guard account.name == request.submittedBy else {
            return try await reject("the credential is of unix user \(account.name) (uid \(identity.uid)) but the request was inserted by database user \(request.submittedBy)",
                                    uid: identity.uid, gid: identity.gid, username: account.name)
        }
        func refuse(_ reason: String) async throws -> Bool {
            try await reject(reason, uid: identity.uid, gid: identity.gid, username: account.name)
        }
        // For a Slurm job: the data is its owner's, if Slurm confirms everything the Slurm user says.
        var owner = (account: account, uid: identity.uid, gid: identity.gid)
        if let onBehalf = payload.onBehalf {
            switch try await confirmWithSlurm(onBehalf, from: identity.uid, account: account, log: log) {
            case .refused(let reason): return try await refuse(reason)
            case .unknownNow: return false
            case .owner(let jobOwner, let uid, let gid): owner = (jobOwner, uid, gid)
            }
        }
        let location: StagingLocation, selected: [SelectedPackage], bytes: Int64
        do {
            location = try StagingPolicy.location(named: payload.destination, in: locations)
            guard try await db.stagingRequestMatches(request.id, selection: payload.selection, destinationLocationID: location.id,
                                                     slurmJobID: payload.onBehalf?.slurmJob, keepAfterJob: payload.onBehalf?.keep ?? false,
                                                     slurmDependency: payload.slurmDependency ?? false) else {
                return try await refuse("the request's selection, location or Slurm job differs from what its credential signed")
            }
            try StagingPolicy.checkGroups(location, account: owner.account.name, groups: owner.account.groups)
            (selected, bytes) = try await StagingPolicy.select(payload.selection, db)
            try await StagingPolicy.checkQuota(location, username: owner.account.name, bytes: bytes, db)
        } catch let refusal as StagingPolicy.Refusal {
            return try await refuse(refusal.description)
        }
        try await db.acceptStagingRequest(request.id, uid: owner.uid, gid: owner.gid, username: owner.account.name,
                                          packageCount: selected.filter { $0.packageID != nil }.count, totalBytes: bytes, reason: nil)
        log.info("staging request accepted", metadata: ["selection": "\(payload.selection.summary)", "location": "\(location.name)",
                                                        "user": "\(owner.account.name)", "slurm_job": "\(payload.onBehalf.map { String($0.slurmJob) } ?? "-")"])
        return true
    }

    enum SlurmConfirmation {
        case owner(UnixAccount, uid: UInt32, gid: UInt32)
        case refused(String)
        /// Slurm did not answer: decide in a later cycle.
        case unknownNow
    }

    /// Whether the Slurm user may stage for this job: the credential must be the Slurm user's,
    /// and Slurm must say that the job exists, belongs to the uid claimed and carries a
    /// `#BB_LUA ccat stage` directive. A scientist cannot take this path for someone else's data.
    private func confirmWithSlurm(_ onBehalf: StagingCredentialPayload.OnBehalf, from uid: UInt32, account: UnixAccount,
                                  log: Logger) async throws -> SlurmConfirmation {
        guard let slurm = settings.slurmJobs else {
            return .refused("a request for Slurm job \(onBehalf.slurmJob) needs a daemon that uses Slurm (ccat daemon --scheduler slurm)")
        }
        let slurmUser: (name: String, uid: UInt32), job: SlurmJobInfo?
        do {
            slurmUser = try await slurm.slurmUser()
            job = try await slurm.job(onBehalf.slurmJob)
        } catch {
            log.warning("cannot ask Slurm about a job to stage for", metadata: ["slurm_job": "\(onBehalf.slurmJob)", "error": "\(error)"])
            return .unknownNow
        }
        guard uid == slurmUser.uid else {
            return .refused("only the Slurm user (\(slurmUser.name)) may stage for a Slurm job; \(account.name) (uid \(uid)) asked to stage for job \(onBehalf.slurmJob) as uid \(onBehalf.uid)")
        }
        guard let job else { return .refused("Slurm does not know job \(onBehalf.slurmJob)") }
        guard job.uid == onBehalf.uid else {
            return .refused("Slurm job \(job.jobID) belongs to \(job.userName) (uid \(job.uid)), not to uid \(onBehalf.uid)")
        }
        guard job.carriesStagingDirective else { return .refused("Slurm job \(job.jobID) carries no '#BB_LUA ccat stage' directive") }
        // The owner's primary group from this host's accounts, not the job's: files are written
        // with it, and the staging groups are checked against the account's own groups.
        guard let entry = getpwuid(job.uid), let owner = UnixAccount.lookup(uid: job.uid, gid: entry.pointee.pw_gid) else {
            return .refused("the owner of Slurm job \(job.jobID) (uid \(job.uid)) has no account on the daemon's host")
        }
        return .owner(owner, uid: job.uid, gid: entry.pointee.pw_gid)
    }

    // MARK: ACCEPTED

    private func startIfArchived(_ request: StagingRequest, unreachable: Set<Int64>, _ db: OpsDB, logger: Logger) async throws -> Int {
        let selection = try StagingSelection.parse(request.selection)
        let selected = try await db.resolveSelection(selection)
        let bytes = selected.reduce(Int64(0)) { $0 + $1.stagedBytes }
        let packaged = selected.filter { $0.packageID != nil }
        if let waiting = selected.notStageableYet {
            try await db.setStagingRequestReason(request.id, "waiting: " + waiting, packageCount: packaged.count, totalBytes: bytes)
            return 0
        }
        guard let destination = request.destinationLocationID, let username = request.username else { return 0 }
        var byOrigin: [Int64: [(id: Int64, bytes: Int64)]] = [:]
        for package in packaged {
            guard let id = package.packageID else { continue }
            let copies = try await db.archiveCopies(of: id, near: destination, preferring: nil)
            let origin = copies.first(where: { !unreachable.contains($0.dataLocationID) }) ?? copies.first
            byOrigin[origin?.dataLocationID ?? 0, default: []].append((id, package.stagedBytes))
        }
        // Packages from one archive go into jobs of up to stagingJobMaxBytes each.
        var jobs: [(originLocationID: Int64?, packageIDs: [Int64])] = []
        for (origin, packages) in byOrigin.sorted(by: { $0.key < $1.key }) {
            var current: [Int64] = []
            var currentBytes: Int64 = 0
            for package in packages {
                if !current.isEmpty && currentBytes + package.bytes > settings.stagingJobMaxBytes {
                    jobs.append((origin == 0 ? nil : origin, current))
                    current = []
                    currentBytes = 0
                }
                current.append(package.id)
                currentBytes += package.bytes
            }
            if !current.isEmpty { jobs.append((origin == 0 ? nil : origin, current)) }
        }
        guard try await db.startStaging(request.id, destinationLocationID: destination, targetDirectory: "\(username)/\(request.id)", jobs: jobs) else {
            return 0
        }
        logger.info("staging request \(request.id): \(packaged.count) packages in \(jobs.count) job(s)", metadata: ["staging_request": "\(request.id)"])
        return 1
    }

    // MARK: STAGING and FAILED

    private func follow(_ request: StagingRequest, keepSeconds keep: Int64, _ db: OpsDB, logger: Logger) async throws -> Int {
        let jobs = try await db.stagingJobStates(requestID: request.id)
        guard !jobs.isEmpty else { return 0 }
        if jobs.allSatisfy({ $0.job.status == .completed }) {
            guard try await db.markStagingRequest(request.id, from: request.status, to: .ready, reason: nil, keepSeconds: keep) else { return 0 }
            logger.info("staging request \(request.id) is ready", metadata: ["staging_request": "\(request.id)"])
            return 1
        }
        if request.status == .staging, let stuck = jobs.first(where: { $0.operationState == .intervention }) {
            let reason = "staging job \(stuck.job.id) failed \(stuck.job.attempts) times (\(stuck.job.errorMessage ?? "no error recorded")); an administrator can retry it with 'ccat ops retry \(stuck.operationID ?? 0)'"
            guard try await db.markStagingRequest(request.id, from: .staging, to: .failed, reason: reason, keepSeconds: keep) else { return 0 }
            logger.error("staging request \(request.id) failed: \(reason)", metadata: ["staging_request": "\(request.id)"])
            return 1
        }
        return 0
    }
}
