import Archiving
import Foundation
import Logging
import OpsDB
import Storage

/// What a successful operation hands back: its report, and the database changes that record its
/// effects (applied in the same transaction that marks the operation succeeded).
public struct ExecutionOutcome: Sendable {
    public var report: OperationReport
    public var record: @Sendable (OpsDB) async throws -> Void
}

/// The context an operation runs in.
public struct ExecutionContext: Sendable {
    public var db: OpsDB
    public var log: OperationLog
    public var stop: StopSignal
    public var s3: S3Settings

    /// For storage calls, which poll it between blocks.
    public var shouldStop: ShouldStop {
        let stop = self.stop
        return { stop.stopReason != nil }
    }
}

/// A failure its executor settles itself instead of the runner's failed attempt (a bundle that
/// arrived damaged goes back to its transfer). The runner calls `settle` in its place.
protocol SettledFailure: Error, CustomStringConvertible {
    func settle(_ operation: OperationRecord, owner: String, db: OpsDB, log: OperationLog, logger: Logger) async throws
}

/// An operation this version cannot run (a storage type or an operation not built yet). Fails the
/// attempt with a message that says so.
public struct UnsupportedOperation: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The inputs of an operation do not describe work that can be done (missing target, no buffer).
public struct InvalidOperation: Error, Sendable, CustomStringConvertible {
    public var description: String
}

func manifestJSON(_ members: [ArchiveMember]) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(members), as: UTF8.self)
}

/// The store behind a location: a POSIX tree or an S3 bucket. Tape is refused with a clear error.
public func locationStore(for locationID: Int64, _ db: OpsDB, s3: S3Settings) async throws -> (location: DataLocation, store: any ObjectStore) {
    try await store(for: locationID, db, s3: s3)
}

func store(for locationID: Int64, _ db: OpsDB, s3: S3Settings) async throws -> (location: DataLocation, store: any ObjectStore) {
    guard let location = try await db.location(id: locationID) else {
        throw InvalidOperation(description: "location \(locationID) does not exist")
    }
    switch try await db.storage(of: location) {
    case .disk(let root):
        return (location, DiskStore(name: location.name, root: root))
    case .s3(let endpoint, let bucket, let region, let prefix, let credentialsSource, let pathStyle):
        let credentials = try S3Credentials.load(source: credentialsSource, location: location.name)
        return (location, S3Store(name: location.name, endpointURL: endpoint, bucket: bucket, region: region, prefix: prefix,
                                  pathStyle: pathStyle, credentials: credentials, settings: s3))
    case .tape(let library, _):
        throw UnsupportedOperation(description: "location '\(location.name)' is on tape (library \(library)); tape is not supported by this version of ccat-runner")
    }
}

/// A POSIX store, for steps that read or write a file tree (packaging, unpacking, staging).
func diskStore(for locationID: Int64, _ db: OpsDB, purpose: String) async throws -> DiskStore {
    guard let location = try await db.location(id: locationID) else {
        throw InvalidOperation(description: "\(purpose) location \(locationID) does not exist")
    }
    switch try await db.storage(of: location) {
    case .disk(let root): return DiskStore(name: location.name, root: root)
    case .s3: throw UnsupportedOperation(description: "\(purpose) location '\(location.name)' is S3; this step needs a POSIX file system")
    case .tape: throw UnsupportedOperation(description: "\(purpose) location '\(location.name)' is tape, which this version does not support")
    }
}

/// The target of an operation, which must be of the kind its type works on.
func target<T>(of operation: OperationRecord, _ what: String, _ decode: (OperationTarget) -> T?) throws -> T {
    guard let value = decode(operation.target) else {
        throw InvalidOperation(description: "operation \(operation.id) (\(operation.operationType.rawValue)) names no \(what); its target is \(operation.target)")
    }
    return value
}

func require<T>(_ value: T?, _ what: @autoclosure () -> String) throws -> T {
    guard let value else { throw InvalidOperation(description: what()) }
    return value
}

func resultJSON(_ fields: [String: any Sendable]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// Runs blocking file work on a dispatch thread, off Swift's cooperative pool, so heartbeats and
/// signal handling keep running while a large archive is written.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}
