import Foundation
import OpsDB
import Postgres
import Processes
import Storage
import Testing
import TestSupport

/// Fixity checks, consistency audits and repairs of archive copies, through `ccat-runner exec`
/// against real PostgreSQL, a disk archive and the S3 test server.
@Suite("Archive integrity: fixity, audit, repair")
struct IntegrityTests {
    @Test func flippedByteInADiskCopyIsFoundQuarantinedAndRepairedFromTheOtherSite() async throws {
        try await ArchiveSites.with { sites in
            let copy = try await sites.packageCopyAtDisk
            let path = sites.diskRoot.appendingPathComponent(copy.relativePath).path
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var damaged = original
            damaged[damaged.count / 2] ^= 0x01
            try damaged.write(to: URL(fileURLWithPath: path))

            // The whole location in one pass (the default 90-day cycle would read a slice a day).
            try await sites.db.setIntegrityPolicy(locationID: sites.disk.id, IntegrityPolicy(fixityCycleSeconds: 3600))
            let run = try await sites.integrityRun(.fixityCheck, at: sites.disk)
            #expect(run.state == .completed)
            #expect(run.checkedCopies == 5 && run.corruptedCount == 1 && run.lostCount == 0)
            #expect(try await sites.db.physicalCopy(id: copy.id)?.status == .corrupted)
            // A corrupted copy no longer counts: the buffer's copy may not be deleted now.
            let buffer = try #require(try await sites.db.location(siteShortName: "ccat", name: "buffer"))
            let bufferCopy = try #require(try await sites.db.liveCopy(of: .rawDataPackage(sites.fixture.package.id), at: buffer.id))
            #expect(try await sites.db.deletionBlocker(copyID: bufferCopy.id, exceptOperation: 0) != nil)
            // The damaged bytes were moved aside, not deleted.
            #expect(!FileManager.default.fileExists(atPath: path))
            let aside = sites.quarantinedFiles()
            #expect(aside.count == 1)
            let finding = try #require(try await sites.db.integrityFindings(runID: run.id, limit: 10).first)
            #expect(finding.kind == .corrupted && finding.physicalCopyID == copy.id && finding.quarantinePath?.hasPrefix(".ccat-quarantine/") == true)
            #expect(try Data(contentsOf: sites.diskRoot.appendingPathComponent(try #require(finding.quarantinePath))) == damaged)

            let repairs = try await sites.repairsScheduled()
            #expect(repairs.map(\.target) == [.physicalCopy(copy.id)])
            let repaired = try await sites.exec(try #require(repairs.first))
            #expect(repaired.status == 0 && repaired.after.state == .succeeded, "\(repaired.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == original)
            let after = try #require(try await sites.db.physicalCopy(id: copy.id))
            #expect(after.status == .present && after.fixityCheckedAt != nil && after.verifiedAt == copy.verifiedAt)
            #expect(sites.quarantinedFiles().isEmpty, "the quarantined object goes once the repair is verified")
            // The catalogue keeps the history: found corrupted, kept aside, repaired from the US archive.
            let history = try await sites.db.integrityFindings(copyID: copy.id)
            #expect(history.count == 1 && history[0].resolvedAt != nil)
            let source = try await sites.packageCopyAtS3.id
            #expect(history[0].resolution?.contains("copy \(source) at lta") == true, "\(history[0].resolution ?? "")")
            // A second pass finds everything whole.
            try await sites.db.connection.execute("UPDATE integrity_run SET finished_at = finished_at - interval '2 days'")
            let again = try await sites.integrityRun(.fixityCheck, at: sites.disk)
            #expect(again.checkedCopies == 5 && again.corruptedCount == 0 && again.state == .completed)
        }
    }

    @Test func s3ObjectDeletedBehindTheSystemsBackIsFoundByTheAuditAndRepaired() async throws {
        try await ArchiveSites.with { sites in
            let copy = try await sites.packageCopyAtS3
            try sites.s3Store.delete(copy.relativePath)
            // An upload that was never finished: reported, not dark. (The test server says every upload
            // started in 2010, so this one counts as over a day old.)
            let aws = try TestEnvironment.awsCLI()
            let started = try runProcess(aws.path, ["--endpoint-url", try TestEnvironment.requireS3Endpoint(), "s3api", "create-multipart-upload",
                                                    "--bucket", sites.bucket, "--key", "ccat/raw/in-flight.tar"], environment: aws.environment)
            #expect(started.status == 0, "\(started.stderr)")

            let run = try await sites.integrityRun(.consistencyAudit, at: sites.s3)
            #expect(run.state == .completed, "\(run.message ?? "")")
            #expect(run.listedObjects == 4 && run.lostCount == 1 && run.darkCount == 0 && run.staleTemporaryCount == 1)
            let unfinished = try await sites.db.integrityFindings(runID: run.id, kinds: [.staleTemporary], limit: 10)
            #expect(unfinished.map(\.relativePath) == ["raw/in-flight.tar"] && unfinished[0].detail?.contains("multipart upload") == true)
            #expect(try await sites.db.physicalCopy(id: copy.id)?.status == .missing)

            let repairs = try await sites.repairsScheduled()
            #expect(repairs.map(\.target) == [.physicalCopy(copy.id)])
            let repaired = try await sites.exec(try #require(repairs.first))
            #expect(repaired.status == 0 && repaired.after.state == .succeeded, "\(repaired.stderr)")
            let back = try #require(try sites.s3Store.readBack(copy.relativePath, shouldStop: { false }))
            #expect(back.sha256 == copy.checksum && back.size == copy.sizeBytes)
            #expect(try await sites.db.physicalCopy(id: copy.id)?.status == .present)
            let again = try await sites.integrityRun(.consistencyAudit, at: sites.s3)
            #expect(again.lostCount == 0 && again.listedObjects == 5)
        }
    }

    @Test func darkObjectsAreReportedNotDeletedUntilAnAdminAsks() async throws {
        try await ArchiveSites.with { sites in
            let root = sites.diskRoot
            func place(_ relative: String, ageSeconds: Double) throws -> String {
                let url = root.appendingPathComponent(relative)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data("not ours".utf8).write(to: url)
                try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-ageSeconds)], ofItemAtPath: url.path)
                return url.path
            }
            let old = try place("stray/old.fits", ageSeconds: 40 * 86_400)
            let recent = try place("stray/recent.fits", ageSeconds: 2 * 3600)
            let writing = try place("stray/being-written.fits", ageSeconds: 60)
            let partial = try place("stray/.left.tar.ccat-partial", ageSeconds: 2 * 86_400)

            let run = try await sites.integrityRun(.consistencyAudit, at: sites.disk)
            #expect(run.state == .completed && run.lostCount == 0)
            #expect(run.darkCount == 2 && run.staleTemporaryCount == 1, "an object younger than an hour may be a write in progress")
            let findings = try await sites.db.integrityFindings(runID: run.id, limit: 10)
            #expect(Set(findings.filter { $0.kind == .dark }.map(\.relativePath)) == ["stray/old.fits", "stray/recent.fits"])
            #expect(findings.filter { $0.kind == .staleTemporary }.map(\.relativePath) == ["stray/.left.tar.ccat-partial"])
            for path in [old, recent, writing, partial] { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }

            // A dry run by default; then only what is older than asked goes.
            let dry = try await runExecutable("ccat", ["audit", "clean", String(run.id), "--delete-dark", "--older-than", "28d"], environment: sites.environment)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("would remove: stray/old.fits") && !dry.stdout.contains("recent.fits") && dry.stdout.contains("dry run"))
            #expect(FileManager.default.fileExists(atPath: old))
            let refused = try await runExecutable("ccat", ["audit", "clean", String(run.id)], environment: sites.environment)
            #expect(refused.status != 0 && refused.stderr.contains("--delete-dark"))
            let done = try await runExecutable("ccat", ["audit", "clean", String(run.id), "--delete-dark", "--older-than", "28d", "--execute"],
                                               environment: sites.environment)
            #expect(done.status == 0 && done.stdout.contains("removed: stray/old.fits"), "\(done.stdout)\(done.stderr)")
            #expect(!FileManager.default.fileExists(atPath: old))
            for path in [recent, writing, partial] { #expect(FileManager.default.fileExists(atPath: path), "\(path)") }
            #expect(try await sites.db.integrityFindings(runID: run.id, kinds: [.dark], limit: 10).filter { $0.resolvedAt != nil }.map(\.relativePath)
                    == ["stray/old.fits"])
            // Nothing catalogued was touched.
            #expect(try await sites.db.checkableCopies(locationID: sites.disk.id).copies == 5)
        }
    }

    @Test func aLocationWhoseRootIsSwappedForAnEmptyDirectoryTripsTheBrake() async throws {
        try await ArchiveSites.with { sites in
            let root = sites.diskRoot
            try FileManager.default.moveItem(at: root, to: root.deletingLastPathComponent().appendingPathComponent("lta-unmounted"))
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)

            let audit = try await sites.integrityRun(.consistencyAudit, at: sites.disk)
            #expect(audit.state == .suspect && audit.lostCount == 5 && audit.listedObjects == 0)
            #expect(audit.message?.contains("ccat audit confirm \(audit.id)") == true)
            let fixity = try await sites.integrityRun(.fixityCheck, at: sites.disk)
            #expect(fixity.state == .suspect && fixity.lostCount >= 1)
            // A mount point that holds other files: every copy of a whole-location pass is gone.
            try Data("someone else's".utf8).write(to: root.appendingPathComponent("other.txt"))
            try await sites.db.setIntegrityPolicy(locationID: sites.disk.id, IntegrityPolicy(fixityCycleSeconds: 3600))
            try await sites.db.connection.execute("UPDATE integrity_run SET started_at = started_at - interval '2 days', finished_at = finished_at - interval '2 days'")
            let wrongMount = try await sites.integrityRun(.fixityCheck, at: sites.disk)
            #expect(wrongMount.state == .suspect && wrongMount.lostCount == 5 && wrongMount.message?.contains("5 of the 5 copies") == true,
                    "\(wrongMount.message ?? "")")
            // Nothing was marked, so nothing is repaired.
            #expect(try await sites.db.checkableCopies(locationID: sites.disk.id).copies == 5)
            #expect(try await sites.repairsScheduled().isEmpty)
            let listed = try await runExecutable("ccat", ["audit", "list", "--state", "suspect"], environment: sites.environment)
            #expect(listed.status == 0 && listed.stdout.contains("SUSPECT") && listed.stdout.contains("cologne:lta"), "\(listed.stdout)\(listed.stderr)")
            let status = try await runExecutable("ccat", ["status"], environment: sites.environment)
            #expect(status.stdout.contains("SUSPECT"), "\(status.stdout)")

            // An admin looks and confirms: the copies are marked and repaired from the other site.
            let confirmed = try await runExecutable("ccat", ["audit", "confirm", String(audit.id)], environment: sites.environment)
            #expect(confirmed.status == 0, "\(confirmed.stderr)")
            #expect(try await sites.db.checkableCopies(locationID: sites.disk.id).copies == 0)
            let again = try await runExecutable("ccat", ["audit", "confirm", String(audit.id)], environment: sites.environment)
            #expect(again.status != 0 && again.stderr.contains("CONFIRMED"))
            let repairs = try await sites.repairsScheduled()
            #expect(repairs.count == 5)
            for repair in repairs {
                let ran = try await sites.exec(repair)
                #expect(ran.status == 0 && ran.after.state == .succeeded, "\(ran.stderr)")
            }
            #expect(try await sites.db.checkableCopies(locationID: sites.disk.id).copies == 5)
            #expect(FileManager.default.contentsEqual(atPath: root.appendingPathComponent(try await sites.packageCopyAtDisk.relativePath).path,
                                                      andPath: sites.fixture.archivePath))
        }
    }

    @Test func stagedDataThatVanishedIsNoticedAndItsRequestSaysSo() async throws {
        try await ArchiveSites.with { sites in
            let db = sites.db
            let processing = try #require(try await db.location(siteShortName: "cologne", name: "ramses_processing"))
            // A READY request with the observation's four files staged under alice/<request>.
            let request: Int64 = try await db.connection.query("""
                INSERT INTO staging_request (credential, selection, destination_location_id, uid, gid, username, status, ready_at)
                VALUES ('test', '{"observations": ["obs-2026-0042"]}', \(processing.id), 1000, 1000, 'alice', 'READY', now()) RETURNING id
                """)[0]["id"]
            let job: Int64 = try await db.connection.query("""
                INSERT INTO staging_job (staging_request_id, destination_location_id, target_directory, status)
                VALUES (\(request), \(processing.id), \("alice/\(request)"), 'COMPLETED') RETURNING id
                """)[0]["id"]
            let root = sites.fixture.work.appendingPathComponent("cologne/processing")
            for row in try await db.connection.query("SELECT id, relative_path, size_bytes, checksum FROM raw_data_file ORDER BY id") {
                let path: String = try row["relative_path"]
                let target = root.appendingPathComponent("alice/\(request)/\(path)")
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: sites.fixture.sourceRoot.appendingPathComponent(path), to: target)
                _ = try await db.insertPhysicalCopy(of: .rawDataFile(try row["id"]), at: processing.id, relativePath: "alice/\(request)/\(path)",
                                                    sizeBytes: try row["size_bytes"], checksum: try row["checksum"], verified: true, stagingJobID: job)
            }
            // The manager asks for the check only where READY data is staged.
            #expect(try await db.holdsReadyStagedData(locationID: processing.id))
            let whole = try await sites.integrityRun(.consistencyAudit, at: processing)
            #expect(whole.state == .completed && whole.checkedCopies == 4 && whole.listedObjects == 4 && whole.lostCount == 0)
            #expect(try await db.connection.query("SELECT reason FROM staging_request WHERE id = \(request)")[0]["reason"] as String? == nil)

            // A scratch purge takes one file; the scientists' own files beside it are none of our business.
            let purged = "alice/\(request)/\(PackagingFixture.names[0])"
            try FileManager.default.removeItem(at: root.appendingPathComponent(purged))
            try Data("mine".utf8).write(to: root.appendingPathComponent("alice/results.txt"))
            let run = try await sites.integrityRun(.consistencyAudit, at: processing)
            #expect(run.state == .completed && run.checkedCopies == 4 && run.lostCount == 1 && run.darkCount == 0)
            let findings = try await db.integrityFindings(runID: run.id, limit: 10)
            #expect(findings.map(\.relativePath) == [purged] && findings.first?.detail == "the file is gone")
            let reason: String? = try await db.connection.query("SELECT reason FROM staging_request WHERE id = \(request)")[0]["reason"]
            #expect(reason?.contains("staged data vanished: 1 of 4 staged files are gone from alice/\(request)") == true, "\(reason ?? "")")
            let status: String = try await db.connection.query("SELECT status::text AS s FROM staging_request WHERE id = \(request)")[0]["s"]
            #expect(status == "READY", "the request stays the scientist's to release")
            #expect(try await db.connection.query("SELECT count(*)::int AS n FROM physical_copy WHERE status = 'MISSING'")[0]["n"] as Int == 1)
            #expect(try await sites.repairsScheduled().isEmpty, "staged data is not repaired: the scientist asks again")
        }
    }

    @Test func anObjectAPassMovedAsideBeforeItWasKilledIsFoundAndRemovedAfterTheRepair() async throws {
        try await ArchiveSites.with { sites in
            let copy = try await sites.packageCopyAtDisk
            // As a pass killed between moving the object aside and recording it leaves it.
            let aside = ".ccat-quarantine/copy-\(copy.id)-1/\(copy.relativePath)"
            try sites.diskStore.move(copy.relativePath, to: aside)
            try await sites.db.setIntegrityPolicy(locationID: sites.disk.id, IntegrityPolicy(fixityCycleSeconds: 3600))
            let run = try await sites.integrityRun(.fixityCheck, at: sites.disk)
            #expect(run.state == .completed && run.corruptedCount == 1 && run.lostCount == 0)
            let finding = try #require(try await sites.db.integrityFindings(runID: run.id, limit: 10).first)
            #expect(finding.quarantinePath == aside && finding.kind == .corrupted)
            let repair = try #require(try await sites.repairsScheduled().first)
            let repaired = try await sites.exec(repair)
            #expect(repaired.status == 0 && repaired.after.state == .succeeded, "\(repaired.stderr)")
            #expect(sites.quarantinedFiles().isEmpty)
            #expect(try sites.diskStore.readBack(copy.relativePath, shouldStop: { false })?.sha256 == copy.checksum)
        }
    }

    @Test func anS3ObjectThatRottedUnderItsRecordedChecksumIsRewrittenNotBelieved() async throws {
        try await ArchiveSites.with { sites in
            let copy = try await sites.packageCopyAtS3
            let size = try #require(copy.sizeBytes), checksum = try #require(copy.checksum)
            // Other bytes of the same size under the same metadata: a HEAD cannot tell.
            let rotten = sites.fixture.work.appendingPathComponent("rotten")
            try Data(repeating: 0x55, count: Int(size)).write(to: rotten)
            let aws = try TestEnvironment.awsCLI()
            let put = try runProcess(aws.path, ["--endpoint-url", try TestEnvironment.requireS3Endpoint(), "s3api", "put-object", "--bucket", sites.bucket,
                                                "--key", "ccat/\(copy.relativePath)", "--body", rotten.path, "--metadata", "sha256=\(checksum)"],
                                     environment: aws.environment)
            #expect(put.status == 0, "\(put.stderr)")
            #expect(try sites.s3Store.holds(copy.relativePath, size: size, sha256: checksum), "the recorded size and checksum look right")
            // As after 'ccat audit confirm' of a suspect pass: marked, not moved aside.
            try await sites.db.connection.execute("UPDATE physical_copy SET status = 'CORRUPTED' WHERE id = \(copy.id)")
            let repair = try #require(try await sites.repairsScheduled().first)
            let repaired = try await sites.exec(repair)
            #expect(repaired.status == 0 && repaired.after.state == .succeeded, "\(repaired.stderr)")
            #expect(try sites.s3Store.readBack(copy.relativePath, shouldStop: { false })?.sha256 == checksum)
        }
    }

    @Test func withNoGoodCopyLeftTheRepairNeedsAHuman() async throws {
        try await ArchiveSites.with { sites in
            // Both archive copies damaged, and the buffer's copy gone.
            let disk = try await sites.packageCopyAtDisk, s3 = try await sites.packageCopyAtS3
            try Data("garbage".utf8).write(to: sites.diskRoot.appendingPathComponent(disk.relativePath))
            try sites.s3Store.delete(s3.relativePath)
            try await sites.db.connection.execute("UPDATE physical_copy SET status = 'CORRUPTED' WHERE id IN (\(disk.id), \(s3.id))")
            try FileManager.default.removeItem(atPath: sites.fixture.archivePath)
            try await sites.db.connection.execute("""
                UPDATE physical_copy SET status = 'DELETED', deleted_at = now() WHERE raw_data_package_id = \(sites.fixture.package.id)
                  AND data_location_id NOT IN (\(sites.disk.id), \(sites.s3.id))
                """)
            let repair = try #require(try await sites.repairsScheduled().first { $0.target == .physicalCopy(disk.id) })
            let ran = try await sites.exec(repair)
            #expect(ran.after.state == .intervention && ran.after.errorClass == "no_verified_copy", "\(ran.after)")
            #expect(ran.after.lastError?.contains("no verified copy is left") == true)
            let attention = try await runExecutable("ccat", ["ops", "list", "--state", "attention"], environment: sites.environment)
            #expect(attention.stdout.contains("ARCHIVE_REPAIR") && attention.stdout.contains("no_verified_copy"), "\(attention.stdout)")
            // The damaged object is kept aside, not deleted, for a human to look at.
            let aside = try #require(sites.quarantinedFiles().first)
            #expect(try Data(contentsOf: sites.diskRoot.appendingPathComponent(".ccat-quarantine/" + aside)) == Data("garbage".utf8))
        }
    }

    @Test func theFixityBudgetSpreadsAPassOverSeveralDays() async throws {
        // A day's budget below the package (~400 kB) and above two files (~100 kB each).
        try await ArchiveSites.with(diskIntegrity: "{fixity_cycle: 1d, fixity_budget_per_day: 250KB}") { sites in
            let policy = try await sites.db.integrityPolicy(locationID: sites.disk.id)
            #expect(policy.fixityBytesPerDay == 256_000 && policy.fixityCycleSeconds == 86_400)
            func verifiedAt() async throws -> [Int64: Date?] {
                let rows = try await sites.db.connection.query("SELECT id, fixity_checked_at FROM physical_copy WHERE data_location_id = \(sites.disk.id)")
                return Dictionary(uniqueKeysWithValues: try rows.map { (try $0["id"], try $0["fixity_checked_at"]) })
            }
            func pass() async throws -> (run: IntegrityRun, checked: Set<Int64>) {
                let before = try await verifiedAt()
                let run = try await sites.integrityRun(.fixityCheck, at: sites.disk)
                let after = try await verifiedAt()
                return (run, Set(after.keys.filter { after[$0] != before[$0] }))
            }
            func nextDay() async throws {
                try await sites.db.connection.execute("UPDATE integrity_run SET started_at = started_at - interval '25 hours', finished_at = finished_at - interval '25 hours'")
            }
            var seen = Set<Int64>()
            // Day 1: the package alone (larger than the budget, but a day with nothing read reads at least one copy).
            let first = try await pass()
            #expect(first.checked == [try await sites.packageCopyAtDisk.id] && first.run.checkedCopies == 1)
            seen.formUnion(first.checked)
            // The same day: nothing left, and the manager would not even ask.
            #expect(try await sites.db.fixityPassWouldCheck(locationID: sites.disk.id, policy: policy) == false)
            let same = try await pass()
            #expect(same.checked.isEmpty && same.run.checkedBytes == 0)
            // Days 2 and 3: two files each, within the budget; no copy is read twice.
            for _ in 0..<2 {
                try await nextDay()
                #expect(try await sites.db.fixityPassWouldCheck(locationID: sites.disk.id, policy: policy))
                let day = try await pass()
                #expect(day.checked.count == 2 && day.run.checkedBytes <= 256_000 && seen.isDisjoint(with: day.checked), "\(day)")
                seen.formUnion(day.checked)
            }
            #expect(seen.count == 5)
        }
    }

    @Test func aRepairKilledMidwayCompletesOnItsRerunWithoutTemporaryObjects() async throws {
        // 4 files of 6 MB: a package S3 takes in several 5 MiB parts.
        try await ArchiveSites.with(fileSize: 6_000_000) { sites in
            let copy = try await sites.packageCopyAtS3
            try sites.s3Store.delete(copy.relativePath)
            try await sites.db.connection.execute("UPDATE physical_copy SET status = 'MISSING' WHERE id = \(copy.id)")
            let repair = try #require(try await sites.repairsScheduled().first)
            let store = sites.s3Store
            let process = try ChildProcess.spawn(TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                 ["exec", "--operation", String(repair.id), "--lease-seconds", "2", "--heartbeat-seconds", "1",
                                                  "--s3-part-size-mib", "5", "--s3-parallel-parts", "1"],
                                                 environment: ProcessInfo.processInfo.environment.merging(sites.environment) { $1 })
            let caught = try await process.kill(within: .seconds(90)) { !(try store.incompleteUploads(of: copy.relativePath)).isEmpty }
            #expect(caught, "the repair finished before it could be killed midway")
            process.signal(SIGKILL)
            try process.wait()
            #expect(try await sites.db.releaseOnceLeasesExpire() == 1)

            let rerun = try await sites.exec(repair)
            #expect(rerun.status == 0 && rerun.after.state == .succeeded, "\(rerun.stderr)")
            #expect(try store.incompleteUploads(of: copy.relativePath).isEmpty, "the killed attempt's multipart upload was aborted")
            #expect(try store.readBack(copy.relativePath, shouldStop: { false })?.sha256 == copy.checksum)
            #expect(try await sites.db.physicalCopy(id: copy.id)?.status == .present)
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-repair-copy-\(copy.id)").path
            #expect(!FileManager.default.fileExists(atPath: scratch))
        }
    }
}
