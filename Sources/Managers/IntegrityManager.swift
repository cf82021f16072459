import Foundation
import Logging
import OpsDB
import Synchronization

/// 9. Long-term archives are kept whole: each gets a FIXITY_CHECK every `fixityIntervalSeconds`
/// while its day's allowance lasts, and a CONSISTENCY_AUDIT every `audit_interval` of its
/// policy; every archive copy those found lost or corrupted gets an ARCHIVE_REPAIR. PROCESSING
/// locations holding data of READY requests get a CONSISTENCY_AUDIT (a look for staged files that
/// vanished) every `fixityIntervalSeconds` too.
public final class IntegrityManager: ManagerCycle, Sendable {
    public let name = "integrity-manager"
    let settings: ManagerSettings
    /// When to look again whether an archive's fixity allowance has room (that look sums the
    /// archive's copies, so it is not repeated every cycle once the day's bytes are read).
    private let nextFixityLook = Mutex<[Int64: ContinuousClock.Instant]>([:])
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let archives = work.places.locations.values.filter { $0.active && $0.locationType == .longTermArchive }.sorted { $0.id < $1.id }
        var created = 0
        for archive in archives {
            let policy = try await db.integrityPolicy(locationID: archive.id)
            created += try await work.attempt("fixity of location \(archive.id) (\(archive.name))") {
                let notYet = nextFixityLook.withLock { $0[archive.id].map { ContinuousClock.now < $0 } ?? false }
                guard !notYet, try await due(.fixity, at: archive.id, every: settings.fixityIntervalSeconds, db) else { return 0 }
                // A pass already waiting or running: weighing the next one (a sum over the
                // archive's copies) waits until it has ended.
                guard try await !db.hasLiveOperation(.fixityCheck, locationID: archive.id) else { return 0 }
                guard try await db.fixityPassWouldCheck(locationID: archive.id, policy: policy) else {
                    nextFixityLook.withLock { $0[archive.id] = .now + .seconds(settings.fixityIntervalSeconds) }
                    return 0
                }
                return try await work.places.schedule(db, OperationPlan(.fixityCheck, at: archive.id, target: .none))
            }
            created += try await work.attempt("audit of location \(archive.id) (\(archive.name))") {
                guard try await due(.audit, at: archive.id, every: Double(policy.auditIntervalSeconds), db) else { return 0 }
                return try await work.places.schedule(db, OperationPlan(.consistencyAudit, at: archive.id, target: .none))
            }
        }
        let scratch = work.places.locations.values.filter { $0.active && $0.locationType == .processing }.sorted { $0.id < $1.id }
        for processing in scratch {
            created += try await work.attempt("staged-data check of location \(processing.id) (\(processing.name))") {
                guard try await due(.audit, at: processing.id, every: settings.fixityIntervalSeconds, db),
                      try await db.holdsReadyStagedData(locationID: processing.id) else { return 0 }
                return try await work.places.schedule(db, OperationPlan(.consistencyAudit, at: processing.id, target: .none))
            }
        }
        // Repairs come before new archiving work on the archive's queue.
        created += try await work.scheduleEach(try await db.copiesToRepair(limit: settings.batchSize), item: { "repair of copy \($0.copyID)" }) {
            OperationPlan(.archiveRepair, at: $0.locationID, target: .physicalCopy($0.copyID), sizeHintBytes: $0.sizeBytes ?? 0, priority: 10)
        }
        return created
    }

    /// No run of `kind` started at the location within the last `seconds`.
    func due(_ kind: IntegrityRunKind, at locationID: Int64, every seconds: Double, _ db: OpsDB) async throws -> Bool {
        guard let last = try await db.lastIntegrityRunStart(locationID: locationID, kind: kind) else { return true }
        return Date().timeIntervalSince(last) >= seconds
    }
}
