import Archiving
import Foundation

/// An object kept by a store: its key (path relative to the location's root), size, and SHA-256
/// when the store knows it without reading the object (S3 metadata written by us).
public struct StoredObject: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int64
    public var sha256: String?

    public init(key: String, size: Int64, sha256: String?) {
        self.key = key
        self.size = size
        self.sha256 = sha256
    }
}

/// Capacity and reachability of a location, as MONITORING records it.
public struct LocationProbe: Sendable, Equatable, Codable {
    public var reachable: Bool
    public var totalBytes: Int64?
    public var freeBytes: Int64?
    public var usedBytes: Int64?
    public var errorMessage: String?

    public init(reachable: Bool, totalBytes: Int64? = nil, freeBytes: Int64? = nil, usedBytes: Int64? = nil, errorMessage: String? = nil) {
        self.reachable = reachable
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.usedBytes = usedBytes
        self.errorMessage = errorMessage
    }
}

/// Polled during long transfers; returning true abandons the transfer (a stop request).
public typealias ShouldStop = @Sendable () -> Bool

/// Where archives are kept: a POSIX tree or an S3 bucket. Every write is verified (size and
/// SHA-256) before it is reported, and lands atomically under its final name.
public protocol ObjectStore: Sendable {
    /// A name for messages: the location's name and where it points.
    var description: String { get }

    /// The object, or nil when there is none.
    func head(_ key: String) throws -> StoredObject?

    /// True when `key` already holds exactly these bytes (size and SHA-256), so a retried write
    /// can be skipped.
    func holds(_ key: String, size: Int64, sha256: String) throws -> Bool

    /// Stores the local file under `key`. The file's own bytes must hash to `sha256` (a damaged
    /// source is never stored), and what arrived is verified before this returns.
    @discardableResult
    func upload(file path: String, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject

    /// Fetches `key` into the local file `path` (temporary name, fsync, rename), verifying size and
    /// checksum on the way; a mismatch leaves nothing at `path`.
    @discardableResult
    func download(_ key: String, to path: String, expectedSize: Int64?, expectedSHA256: String?, shouldStop: @escaping ShouldStop) throws -> StoredObject

    /// Removes the object; one that is already gone is not an error.
    func delete(_ key: String) throws

    /// Objects whose keys start with `prefix`, sorted by key.
    func list(prefix: String) throws -> [StoredObject]

    /// Reachability and, where the store can tell, capacity.
    func probe() -> LocationProbe
}

/// Checks an object name (a path relative to a location's root): not empty, not absolute, no
/// `.`/`..`/empty components, no NUL. The same rules the database enforces on relative paths.
public func validateKey(_ key: String, location: String) throws {
    func refuse(_ why: String) -> StorageError {
        StorageError(kind: .invalidPath, location: location, object: key, problem: why)
    }
    if key.isEmpty { throw refuse("an empty path") }
    if key.hasPrefix("/") { throw refuse("an absolute path; paths are relative to the location's root") }
    if key.utf8.contains(0) { throw refuse("a path with a NUL byte") }
    for component in key.split(separator: "/", omittingEmptySubsequences: false) {
        if component.isEmpty { throw refuse("a path with an empty component ('//' or a trailing '/')") }
        if component == "." || component == ".." { throw refuse("a path with a '\(component)' component would leave the location's root") }
    }
}

/// Opens a local file that is to be stored and returns its descriptor (the caller closes it) and
/// size; a missing file is `notFound`, any other failure `io`, both naming the object.
func openSource(_ path: String, location: String, object key: String) throws -> (fd: Int32, size: Int64) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw StorageError(kind: errno == ENOENT ? .notFound : .io, location: location, object: key,
                           problem: "cannot open \(path): \(String(cString: strerror(errno)))")
    }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
        let problem = "cannot stat \(path): \(String(cString: strerror(errno)))"
        close(fd)
        throw StorageError(kind: .io, location: location, object: key, problem: problem)
    }
    return (fd, Int64(info.st_size))
}
