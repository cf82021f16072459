import Foundation
import OpsDB
import Storage

/// FIXITY_CHECK: re-reads the archive copies of one long-term archive checked longest ago, as
/// many as the day's allowance holds (the location's bytes spread over its fixity cycle, capped
/// by its budget), and recomputes their SHA-256. Copies that verify get a new `fixity_checked_at`; a
/// copy that is gone or has other bytes is a finding: marked MISSING or CORRUPTED, its object
/// moved aside, and repaired by the integrity manager. When more copies look bad than the safety
/// brake allows, the pass is recorded as suspect and nothing is marked or moved.
enum FixityCheckExecution {
    static func run(_ operation: OperationRecord, context: ExecutionContext) async throws -> ExecutionOutcome {
        let db = context.db
        let target = try await store(for: operation.dataLocationID, db, s3: context.s3)
        let policy = try await db.integrityPolicy(locationID: operation.dataLocationID)
        let allowance = try await db.fixityAllowance(locationID: operation.dataLocationID, policy: policy)
        let copies = try await db.fixityDueCopies(locationID: operation.dataLocationID, maxBytes: allowance.remaining,
                                                  atLeastOne: allowance.checkedLastDay == 0)
        let run = try await db.startIntegrityRun(.fixity, locationID: operation.dataLocationID, operationID: operation.id)
        let log = context.log
        log.write("fixity run \(run.id) of \(target.store.description): \(copies.count) of \(allowance.copies) copies; "
                  + "\(formatByteCount(allowance.remaining)) left of today's \(formatByteCount(allowance.dailyBytes))")
        let shouldStop = context.shouldStop
        var verified: [Int64] = []
        var problems: [FixityProblem] = []
        var bytes: Int64 = 0
        for copy in copies {
            if shouldStop() { throw StopRequestedDuringCopy() }
            let expectedSize = copy.sizeBytes ?? 0, expectedSHA = copy.checksum ?? ""
            // A store that cannot be reached fails the attempt (an unreachable archive is not a lost
            // one); an object that cannot be read while others can is a finding of its own.
            let read: StoredObject?
            do {
                read = try await runBlocking { try target.store.readBack(copy.relativePath, shouldStop: shouldStop) }
            } catch let error as StorageError where [.io, .invalidPath, .rejected].contains(error.kind) {
                problems.append(FixityProblem(copy: copy, kind: .corrupted, foundSize: nil, foundChecksum: nil, detail: "cannot be read: \(error.problem)"))
                log.write("UNREADABLE copy \(copy.id): \(copy.relativePath): \(error)")
                continue
            }
            guard let read else {
                // An attempt killed after moving the object aside and before recording it left it there.
                if let aside = try await runBlocking({ try Quarantine.objects(of: copy, in: target.store) }).first {
                    problems.append(FixityProblem(copy: copy, kind: .corrupted, foundSize: nil, foundChecksum: nil,
                                                  detail: "found moved aside by an earlier attempt", quarantinePath: aside))
                    log.write("CORRUPTED copy \(copy.id): kept aside at \(aside) by an earlier attempt")
                } else {
                    problems.append(FixityProblem(copy: copy, kind: .lost, foundSize: nil, foundChecksum: nil, detail: "the object is gone"))
                    log.write("LOST copy \(copy.id): \(copy.relativePath) is gone")
                }
                continue
            }
            bytes += read.size
            if read.size == expectedSize, read.sha256 == expectedSHA {
                verified.append(copy.id)
            } else {
                let detail = "read back \(read.size) bytes with SHA-256 \(read.sha256 ?? "?"), expected \(expectedSize) bytes with \(expectedSHA)"
                problems.append(FixityProblem(copy: copy, kind: .corrupted, foundSize: read.size, foundChecksum: read.sha256, detail: detail))
                log.write("CORRUPTED copy \(copy.id): \(copy.relativePath): \(detail)")
            }
        }
        let limit = policy.brakeLimit(copies: run.cataloguedCopies)
        // A gone object is believed only while the storage holds anything at all: one copy read
        // from an unmounted file system or an emptied bucket is not one copy lost.
        let looksEmpty = problems.contains { $0.kind == .lost } ? try await runBlocking { try Brake.isEmpty(target.store) } : false
        // A pass reads a day's slice: more than half of a slice bad says more about the storage
        // (a wrong prefix, a mount point holding other files) than about the copies.
        let mostOfThePass = copies.count >= 2 && problems.count * 2 > copies.count
        let suspect = problems.count > limit || looksEmpty || mostOfThePass
        let message = suspect ? Brake.message(bad: Int64(problems.count), of: run.cataloguedCopies, limit: limit, runID: run.id,
                                              what: looksEmpty ? "the storage holds nothing at all"
                                                  : mostOfThePass ? "\(problems.count) of the \(copies.count) copies this pass read" : "re-read copies") : nil
        if let message {
            log.write(message)
        } else {
            for index in problems.indices where problems[index].kind == .corrupted && problems[index].quarantinePath == nil && problems[index].foundSize != nil {
                do {
                    problems[index].quarantinePath = try await Quarantine.moveAside(problems[index].copy, in: target.store, log: log)
                } catch let error as StorageError {
                    // Storage that refuses renames (WORM): the copy is still marked, and kept where it is.
                    problems[index].detail += "; it could not be moved aside (\(error.problem)) and stays where it is"
                    log.write("copy \(problems[index].copy.id) could not be moved aside: \(error)")
                }
            }
        }
        let (checked, found, checkedBytes) = (verified, problems, bytes)
        return ExecutionOutcome(
            report: OperationReport(bytesProcessed: bytes,
                                    resultJSON: resultJSON(["run": run.id, "checked": verified.count + problems.count, "bad": problems.count,
                                                            "suspect": suspect]),
                                    logPath: log.path),
            record: { db in
                try await db.finishFixityRun(run.id, verified: checked, checkedBytes: checkedBytes, problems: found, brakeLimit: limit,
                                             suspect: suspect, message: message)
            })
    }
}
