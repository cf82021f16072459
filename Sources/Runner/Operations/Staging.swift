import Archiving
import Foundation
import OpsDB
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// What a STAGING or staging DELETION operation works on: the job, its PROCESSING store, and
/// whose files they are (nil: a job made without a request).
enum StagingTarget {
    static func load(_ operation: OperationRecord, _ db: OpsDB) async throws -> (Int64, StagingJob, DiskStore, FileOwner?) {
        let jobID = try target(of: operation, "staging job") { if case .stagingJob(let id) = $0 { id } else { nil } }
        let job = try require(try await db.stagingJob(id: jobID), "staging job \(jobID) does not exist")
        let processing = try await diskStore(for: job.destinationLocationID, db, purpose: "processing")
        let owner = try await db.stagingJobOwner(jobID).map { FileOwner(uid: $0.uid, gid: $0.gid, username: $0.username) }
        return (jobID, job, processing, owner)
    }
}

/// STAGING: each package of the job is fetched from the nearest healthy verified long-term
/// archive copy (the next one if that fails), checksum checked while it streams, into a private
/// area of the runner; then unpacked, as the requester, into `<root>/<user>/<request id>` with
/// every file verified against the manifest. Each package is stamped as it lands (progress for
/// `ccat stage status`); the files are registered as copies of the job. Archive copies are only
/// read.
enum StagingExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let (jobID, job, processing, owner) = try await StagingTarget.load(operation, db)
        let packages = try await db.stagingJobPackages(jobID)
        guard !packages.isEmpty else { throw InvalidOperation(description: "staging job \(jobID) names no packages") }
        if let ended = try await db.stagingJobEnded(jobID) {
            throw InvalidOperation(description: "staging job \(jobID) is not staged: \(ended)")
        }
        let unreachable = try await db.unreachableLocations()

        // The target: <root>/<user>/<request id> (or the job's directory as given, for jobs made
        // by an administrator without a request).
        let parts = job.targetDirectory.split(separator: "/").map(String.init)
        _ = try processing.path(of: job.targetDirectory)
        let parent: String
        if let owner, parts.count == 2, parts[0] == owner.username {
            parent = try userDirectory(root: processing.root, owner: owner, name: parts[0])
        } else {
            parent = (try processing.path(of: job.targetDirectory, creatingParent: true) as NSString).deletingLastPathComponent
        }
        let targetRoot = parent + "/" + (parts.last ?? "")
        try asFileOwner(owner) {
            if mkdir(targetRoot, 0o700) != 0 && errno != EEXIST {
                throw OwnershipError(description: "cannot create \(targetRoot): \(String(cString: strerror(errno)))")
            }
        }
        // Everything below the location's root is reached without following a link.
        let target = RootedPath(root: processing.root, relative: job.targetDirectory)
        // Downloads land in the runner's own directory (searchable, not listable or writable by
        // others); each archive is then handed to the requester, who unpacks it.
        let scratch = try runnerDirectory(try runnerDirectory(processing.root + "/.ccat-staging") + "/job-\(jobID)")

        // Room for every package unpacked, and for the largest one's download beside them.
        let sizes = packages.map { $0.sizeBytes ?? 0 }
        try processing.requireSpace(sizes.reduce(0, +) + (sizes.max() ?? 0), for: "staging job \(jobID)")
        var staged: [(file: RawDataFile, member: ArchiveMember)] = []
        var bytes: Int64 = 0
        for package in packages {
            guard let checksum = package.checksum, let size = package.sizeBytes, let manifestText = package.manifest else {
                throw InvalidOperation(description: "raw data package \(package.name) has no recorded checksum or manifest")
            }
            let manifest = try JSONDecoder().decode([ArchiveMember].self, from: Data(manifestText.utf8))
            let copies = try await db.archiveCopies(of: package.id, near: job.destinationLocationID, preferring: job.originLocationID)
            guard !copies.isEmpty else {
                throw InvalidOperation(description: "raw data package \(package.name) has no verified copy in an active long-term archive")
            }
            // Healthy archives first, in the order of preference; the unhealthy ones last.
            let ordered = copies.filter { !unreachable.contains($0.dataLocationID) } + copies.filter { unreachable.contains($0.dataLocationID) }
            let download = "\(scratch)/\(package.name).tar"
            let copy = try await fetch(package.name, from: ordered, to: download, size: size, sha256: checksum, context: context)
            if let owner, owner.uid != geteuid(), lchown(download, owner.uid, owner.gid) != 0 {
                let reason = String(cString: strerror(errno))
                unlink(download)
                throw OwnershipError(description: "cannot hand \(download) to \(owner.username) (uid \(owner.uid)): \(reason); staging for other users needs a runner with CAP_CHOWN")
            }
            context.log.write("unpacking \(package.name) into \(targetRoot) as \(owner.map { "\($0.username) (uid \($0.uid))" } ?? "the runner's user")")
            do {
                _ = try await runBlocking { try asFileOwner(owner) { try TarArchive.extract(RootedPath(file: download), into: target, expected: manifest) } }
            } catch {
                unlink(download)
                throw error
            }
            unlink(download)
            bytes += size
            try await db.markStagingPackageStaged(jobID: jobID, packageID: package.id, fromCopy: copy.id)
            let byPath = Dictionary(manifest.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
            for file in try await db.rawDataFiles(packageID: package.id) {
                guard let member = byPath[file.relativePath] else {
                    throw ArchiveError(kind: .checksumMismatch, path: download, member: file.relativePath, problem: "registered file missing from the package's manifest")
                }
                staged.append((file, member))
            }
        }
        rmdir(scratch)
        context.log.write("staged \(staged.count) files (\(bytes) bytes of archives) into \(targetRoot)")
        let listed = try await StagedDirectoryFiles.write(jobID: jobID, into: target, owner: owner, db)
        context.log.write("\(StagedDirectoryFiles.checksums) and \(StagedDirectoryFiles.provenance) list \(listed) files staged so far")
        let count = staged.count
        let files = staged
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: bytes, resultJSON: resultJSON(["files": count, "directory": job.targetDirectory]),
                                    logPath: context.log.path),
            record: { db in
                for (file, member) in files {
                    let existing = try await db.physicalCopies(of: .rawDataFile(file.id)).contains {
                        $0.stagingJobID == jobID && $0.dataLocationID == job.destinationLocationID && $0.status != .deleted
                    }
                    if !existing {
                        _ = try await db.insertPhysicalCopy(of: .rawDataFile(file.id), at: job.destinationLocationID,
                                                            relativePath: "\(job.targetDirectory)/\(member.path)", sizeBytes: member.size,
                                                            checksum: member.sha256, verified: true, stagingJobID: jobID)
                    }
                }
                try await db.recordStagingCompleted(jobID)
                // Its request ended while this ran: the directory has to go again.
                try await db.reopenStagingCleanupIfEnded(jobID)
            })
    }

    /// Downloads from the first archive copy that delivers the verified bytes and returns it; when
    /// none does, the last failure is thrown (each one is in the operation's log).
    static func fetch(_ name: String, from copies: [PhysicalCopy], to download: String, size: Int64, sha256: String,
                      context: ExecutionContext) async throws -> PhysicalCopy {
        var lastError: (any Error)?
        for copy in copies {
            do {
                let archive = try await store(for: copy.dataLocationID, context.db, s3: context.s3)
                context.log.write("fetching \(name) from \(archive.store.description)")
                let shouldStop = context.shouldStop
                _ = try await runBlocking {
                    try archive.store.download(copy.relativePath, to: download, expectedSize: size, expectedSHA256: sha256, shouldStop: shouldStop)
                }
                return copy
            } catch let stop as StopRequestedDuringCopy {
                throw stop
            } catch {
                unlink(download)
                context.log.write("could not fetch \(name) from location \(copy.dataLocationID): \(error)")
                lastError = error
            }
        }
        throw lastError ?? InvalidOperation(description: "raw data package \(name) has no archive copy to fetch")
    }
}
