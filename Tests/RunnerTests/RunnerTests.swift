import Foundation
import OpsDB
import Postgres
import Processes
import Scheduling
import Testing
import TestSupport
import Topology

/// A site with a SOURCE and a BUFFER on disk under a scratch directory, files registered at the
/// source, a package of them, and a RAW_DATA_PACKAGE_CREATION operation into the buffer.
struct PackagingFixture {
    let database: TestDatabase
    let db: OpsDB
    let work: URL
    let sourceRoot: URL
    let bufferRoot: URL
    let package: RawDataPackage
    let operation: OperationRecord
    let queue: Queue
    let files: [(path: String, sha256: String)]

    /// Names a shell would trip over (spaces, quotes, non-ASCII), in an observation directory as
    /// registration requires. Control characters are refused at registration (RegistrationRules).
    static let names = ["obs-2026-0042/scan 1.fits", "obs-2026-0042/quote's \"x\".dat", "obs-2026-0042/$(echo no) `x`.bin", "obs-2026-0042/ümlaut/日本.raw"]

    /// `moreSites` is YAML for further sites, appended to the topology; `{work}` stands for the scratch directory.
    static func with(fileSize: Int = 100_000, corrupt: Bool = false, moreSites: String = "",
                     _ body: (PackagingFixture) async throws -> Void) async throws {
        try await withTestDatabase { database, connection in
            _ = try await Migrator.bundled().migrate(connection)
            let work = try testScratchDirectory("runner")
            let sourceRoot = work.appendingPathComponent("source"), bufferRoot = work.appendingPathComponent("buffer")
            try FileManager.default.createDirectory(at: sourceRoot, withIntermediateDirectories: true)
            let topology = """
                sites:
                  - short_name: ccat
                    name: CCAT Observatory
                    locations:
                      - name: primecam_raw_data
                        type: SOURCE
                        storage: {disk: {root: "\(sourceRoot.path)"}}
                      - name: buffer
                        type: BUFFER
                        storage: {disk: {root: "\(bufferRoot.path)"}}
                """ + "\n" + moreSites.replacingOccurrences(of: "{work}", with: work.path)
            _ = try await TopologySync().apply(try TopologyParser.parse(topology, file: "test.yaml"), to: connection)
            let db = OpsDB(connection)
            let source = try #require(try await db.location(siteShortName: "ccat", name: "primecam_raw_data"))
            let buffer = try #require(try await db.location(siteShortName: "ccat", name: "buffer"))
            let observation = try await db.upsertObservation(obsID: "obs-2026-0042")
            var files: [(String, String)] = []
            var ids: [Int64] = []
            for (index, name) in names.enumerated() {
                let url = sourceRoot.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                // A 64 KiB pattern repeated (tests in debug builds cannot afford a byte-by-byte loop).
                let size = fileSize + index
                let pattern = Data((0..<min(size, 65_536)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
                #expect(FileManager.default.createFile(atPath: url.path, contents: nil))
                let handle = try FileHandle(forWritingTo: url)
                var written = 0
                while written < size {
                    let chunk = pattern.prefix(size - written)
                    try handle.write(contentsOf: chunk)
                    written += chunk.count
                }
                try handle.close()
                let sum = try await offPool { try runProcess("/usr/bin/sha256sum", ["-b", url.path]) }.stdout.drop { $0 == "\\" }.prefix(64)
                let registered = corrupt && index == 1 ? String(repeating: "a", count: 64) : String(sum)
                let file = try await db.registerRawDataFile(NewRawDataFile(relativePath: name, sizeBytes: Int64(size), checksum: registered,
                                                                           executedObsUnitID: observation.id, sourceLocationID: source.id)).file
                files.append((name, String(sum)))
                ids.append(file.id)
            }
            let package = try await db.createRawDataPackage(name: "obs-2026-0042_primecam", observationID: observation.id,
                                                            sourceLocationID: source.id, relativePath: "raw/obs-2026-0042_primecam.tar", fileIDs: ids)
            var queue = try #require(try await QueueDiscovery.discover(db).first { $0.operation == .rawDataPackageCreation })
            queue.profile = BatchProfile(partition: "debug", timeLimitMinutes: 5, cpus: 1, memoryMB: 256)
            let operation = try #require(try await db.createOperation(.rawDataPackageCreation, queue: queue.name, locationID: source.id,
                                                                      target: .rawDataPackage(package.id), targetLocationID: buffer.id))
            try await body(PackagingFixture(database: database, db: db, work: work, sourceRoot: sourceRoot, bufferRoot: bufferRoot,
                                            package: package, operation: operation, queue: queue, files: files))
        }
    }

    var archivePath: String { bufferRoot.appendingPathComponent(package.relativePath).path }

    var environment: [String: String] { ["CCAT_DATABASE_URL": database.conninfo, "CCAT_STATE_DIRECTORY": work.appendingPathComponent("state").path] }

    func partialFiles() -> [String] {
        (FileManager.default.enumerator(atPath: bufferRoot.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".ccat-partial") }
    }

    /// The package is archived, verified and recorded, and GNU tar agrees.
    func expectPackaged() async throws {
        let package = try #require(try await db.rawDataPackage(id: self.package.id))
        #expect(package.status == .completed)
        let archive = archivePath
        let sum = try await offPool { try runProcess("/usr/bin/sha256sum", ["-b", archive]) }.stdout.prefix(64)
        #expect(package.checksum == String(sum))
        let manifest = try JSONSerialization.jsonObject(with: Data((package.manifest ?? "[]").utf8)) as? [[String: Any]] ?? []
        #expect(manifest.compactMap { $0["sha256"] as? String } == files.sorted { $0.path < $1.path }.map(\.sha256))
        let copies = try await db.physicalCopies(of: .rawDataPackage(package.id))
        #expect(copies.count == 1)
        #expect(copies.first?.checksum == package.checksum)
        #expect(copies.first?.verifiedAt != nil)
        let extracted = work.appendingPathComponent("gnu-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: extracted, withIntermediateDirectories: true)
        #expect(try await offPool { try runProcess("/usr/bin/tar", ["-xf", archive, "-C", extracted.path]) }.status == 0)
        for file in files {
            #expect(FileManager.default.contentsEqual(atPath: extracted.appendingPathComponent(file.path).path,
                                                      andPath: sourceRoot.appendingPathComponent(file.path).path), "\(file.path)")
        }
        #expect(partialFiles().isEmpty)
    }
}

@Suite("ccat-runner: packaging raw data through exec and through batch jobs")
struct RunnerTests {
    @Test func execPackagesAndIsIdempotent() async throws {
        try await PackagingFixture.with { fixture in
            let first = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id), "--json"], environment: fixture.environment)
            #expect(first.status == 0, "\(first.stderr)")
            try await fixture.expectPackaged()
            let operation = try #require(try await fixture.db.operation(id: fixture.operation.id))
            #expect(operation.state == .succeeded)
            #expect(operation.bytesProcessed == (try #require(try await fixture.db.rawDataPackage(id: fixture.package.id))).sizeBytes)
            let log = try #require(operation.logPath)
            #expect(try String(contentsOfFile: log, encoding: .utf8).contains("succeeded"))
            let inode = try FileManager.default.attributesOfItem(atPath: fixture.archivePath)[.systemFileNumber] as? Int

            // Running it again finds the verified archive and does not rebuild it.
            let again = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try FileManager.default.attributesOfItem(atPath: fixture.archivePath)[.systemFileNumber] as? Int == inode)
            let text = try String(contentsOfFile: log, encoding: .utf8)
            #expect(text.contains("not rebuilt"))
            // Both attempts are in the log.
            #expect(text.components(separatedBy: "succeeded:").count == 3)
            try await fixture.expectPackaged()

            let busy = try await runExecutable("ccat-runner", ["exec", "--operation", "999999"], environment: fixture.environment)
            #expect(busy.status != 0)
            #expect(busy.stderr.contains("no operation 999999"))
        }
    }

    /// A registered file replaced by a link to something the runner can read (a key, .pgpass)
    /// is refused: nothing is archived, and the error neither follows nor describes the target.
    @Test func aRegisteredFileReplacedByALinkIsNeverFollowed() async throws {
        try await PackagingFixture.with { fixture in
            let secret = try testScratchDirectory("secret").appendingPathComponent("key")
            try Data("private key material".utf8).write(to: secret)
            let secretSum = String(try await offPool { try runProcess("/usr/bin/sha256sum", [secret.path]) }.stdout.prefix(64))
            let target = fixture.sourceRoot.appendingPathComponent(PackagingFixture.names[0])
            try FileManager.default.removeItem(at: target)
            try FileManager.default.createSymbolicLink(at: target, withDestinationURL: secret)
            let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
            #expect(result.status == 1)
            let operation = try #require(try await fixture.db.operation(id: fixture.operation.id))
            #expect(operation.lastError?.contains("is a symbolic link") == true, "\(operation.lastError ?? "")")
            #expect(operation.lastError?.contains(secretSum) == false)
            #expect(!result.stderr.contains(secretSum))
            #expect(!FileManager.default.fileExists(atPath: fixture.archivePath))
            #expect(fixture.partialFiles().isEmpty)
        }
    }

    /// The observation's directory swapped for a link to a copy elsewhere: even with every
    /// registered checksum matching, nothing is read through the link.
    @Test func aDirectoryOnTheWayReplacedByALinkIsNeverFollowed() async throws {
        try await PackagingFixture.with { fixture in
            let observation = fixture.sourceRoot.appendingPathComponent("obs-2026-0042")
            let elsewhere = try testScratchDirectory("elsewhere").appendingPathComponent("obs")
            try FileManager.default.moveItem(at: observation, to: elsewhere)
            try FileManager.default.createSymbolicLink(at: observation, withDestinationURL: elsewhere)
            let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
            #expect(result.status == 1)
            let operation = try #require(try await fixture.db.operation(id: fixture.operation.id))
            #expect(operation.errorClass == "symbolic_link")
            #expect(operation.lastError?.contains("'obs-2026-0042' on the way is a symbolic link") == true, "\(operation.lastError ?? "")")
            #expect(!FileManager.default.fileExists(atPath: fixture.archivePath))
            #expect(fixture.partialFiles().isEmpty)
        }
    }

    /// A buffer without room for the package and for bundling it later: the operation waits
    /// (no_space), uses up no attempt and leaves nothing; once space is added it goes through.
    @Test(.enabled(if: SmallFileSystem.available)) func aBufferWithoutRoomWaitsWithoutUsingUpAttempts() async throws {
        try await PackagingFixture.with(fileSize: 300_000) { fixture in
            try await SmallFileSystem.with(bytes: 2 << 20, at: fixture.bufferRoot) { fileSystem in
                for _ in 0..<2 {
                    let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
                    #expect(result.status == 1)
                    let operation = try #require(try await fixture.db.operation(id: fixture.operation.id))
                    #expect(operation.state == .pending)
                    #expect(operation.attempts == 0)
                    #expect(operation.errorClass == "no_space")
                    #expect(operation.lastError?.contains("and as much again to bundle it") == true, "\(operation.lastError ?? "")")
                    #expect(!FileManager.default.fileExists(atPath: fixture.archivePath))
                    #expect(fixture.partialFiles().isEmpty)
                }
                try await offPool { try fileSystem.resize(bytes: 8 << 20) }
                let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
                #expect(result.status == 0, "\(result.stderr)")
                try await fixture.expectPackaged()
            }
        }
    }

    @Test func registeredChecksumMismatchFailsTheAttemptAndLeavesNothing() async throws {
        try await PackagingFixture.with(corrupt: true) { fixture in
            let result = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
            #expect(result.status == 1)
            let operation = try #require(try await fixture.db.operation(id: fixture.operation.id))
            #expect(operation.state == .pending)
            #expect(operation.attempts == 1)
            #expect(operation.errorClass == "checksum_mismatch")
            #expect(operation.lastError?.contains(PackagingFixture.names[1]) == true)
            // What the file really holds is not told to whoever registered it.
            #expect(operation.lastError?.contains(fixture.files[1].sha256) == false, "\(operation.lastError ?? "")")
            #expect(!FileManager.default.fileExists(atPath: fixture.archivePath))
            #expect(fixture.partialFiles().isEmpty)
            #expect(try await fixture.db.rawDataPackage(id: fixture.package.id)?.status != .completed)
        }
    }

    @Test func killedMidwayThenRerunCompletes() async throws {
        // Large enough that the runner is still writing when it is killed.
        try await PackagingFixture.with(fileSize: 100_000_000) { fixture in
            let process = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                 ["exec", "--operation", String(fixture.operation.id), "--lease-seconds", "2", "--heartbeat-seconds", "1"],
                                                 environment: ProcessInfo.processInfo.environment.merging(fixture.environment) { $1 })
            let caught = try await process.kill(within: .seconds(90)) { !fixture.partialFiles().isEmpty }
            #expect(caught, "the runner finished (or never started writing) before it could be killed midway")
            process.signal(SIGKILL)
            try process.wait()
            #expect(!FileManager.default.fileExists(atPath: fixture.archivePath))
            // The lease runs out; the tracker's failover puts the operation back.
            let released = try await fixture.db.releaseOnceLeasesExpire()
            #expect(released == 1)
            #expect(try await fixture.db.operation(id: fixture.operation.id)?.state == .pending)
            let rerun = try await runExecutable("ccat-runner", ["exec", "--operation", String(fixture.operation.id)], environment: fixture.environment)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            try await fixture.expectPackaged()
        }
    }

    /// Slurm where the test cluster runs (always in CI, where its absence fails the test).
    @Test(arguments: TestEnvironment.runSlurmTests ? ["slurm", "local"] : ["local"])
    func batchJobRunsTheRealRunner(_ kind: String) async throws {
        try await PackagingFixture.with { fixture in
            let work = fixture.work
            let scheduler: any BatchScheduler = kind == "slurm"
                ? SlurmScheduler(environment: try TestEnvironment.slurmEnvironment())
                : try LocalScheduler(stateDirectory: work.appendingPathComponent("local").path)
            let settings = DispatchSettings(
                jobDirectory: work.appendingPathComponent("jobs").path,
                runnerPath: TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                environment: [("CCAT_DATABASE_URL", fixture.database.conninfo)])
            let dispatcher = Dispatcher(db: fixture.db, scheduler: scheduler,
                                        renderer: try JobScriptRenderer(builtinDirectory: TestEnvironment.repositoryRoot.appendingPathComponent("jobscripts").path),
                                        settings: settings)
            #expect(try await dispatcher.dispatch(fixture.queue).jobsSubmitted == 1)
            let job = try #require(try await fixture.db.batchJobs().first)
            let tracker = JobTracker(db: fixture.db, scheduler: scheduler)
            // On the shared two-core Slurm node the job may queue behind the end-to-end runs for minutes.
            let deadline = ContinuousClock.now + .seconds(360)
            var current = job
            // A status query that fails (sacct timing out while slurmdbd is busy) is what the
            // daemon's next cycle retries; here too, the next poll does.
            var lastSchedulerError: (any Error)?
            while !current.state.isTerminal, ContinuousClock.now < deadline {
                do {
                    _ = try await tracker.poll()
                } catch let error where error is SlurmOutputError || error is CommandRunError {
                    lastSchedulerError = error
                }
                current = try #require(try await fixture.db.batchJob(id: job.id))
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(current.state == .completed, "job output: \((try? String(contentsOfFile: job.stderrPath ?? "", encoding: .utf8)) ?? ""); last scheduler error: \(lastSchedulerError.map { "\($0)" } ?? "none")")
            #expect(try await fixture.db.operation(id: fixture.operation.id)?.state == .succeeded)
            try await fixture.expectPackaged()
            // The operation's log sits next to the job script.
            let log = try #require(try await fixture.db.operation(id: fixture.operation.id)?.logPath)
            #expect(log.hasPrefix(URL(fileURLWithPath: job.scriptPath).deletingLastPathComponent().path))
        }
    }
}
