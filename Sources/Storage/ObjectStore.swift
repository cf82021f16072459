import Archiving
import Foundation

/// An object kept by a store: its key (path relative to the location's root), size, and SHA-256
/// when the store knows it without reading the object (S3 metadata written by us).
public struct StoredObject: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int64
    public var sha256: String?
    /// When the object was last written, where a listing says (mtime, S3's LastModified).
    public var modified: Date?

    public init(key: String, size: Int64, sha256: String?, modified: Date? = nil) {
        self.key = key
        self.size = size
        self.sha256 = sha256
        self.modified = modified
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
    func upload(file: RootedPath, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject

    /// Fetches `key` into the local file `path` (temporary name, fsync, rename), verifying size and
    /// checksum on the way; a mismatch leaves nothing at `path`.
    @discardableResult
    func download(_ key: String, to path: String, expectedSize: Int64?, expectedSHA256: String?, shouldStop: @escaping ShouldStop) throws -> StoredObject

    /// Removes the object; one that is already gone is not an error.
    func delete(_ key: String) throws

    /// Objects whose keys start with `prefix`, sorted by key.
    func list(prefix: String) throws -> [StoredObject]

    /// Every object whose key starts with `prefix`, temporary files of interrupted writes
    /// included, handed to `page` at most `pageSize` at a time in no particular order: memory
    /// stays bounded by one page however many objects the store holds.
    func listPages(prefix: String, pageSize: Int, _ page: ([StoredObject]) throws -> Void) throws

    /// Reads the whole object back and hashes it (a HEAD is not a fixity check): its size and
    /// SHA-256 as stored now, or nil when there is no such object.
    func readBack(_ key: String, shouldStop: @escaping ShouldStop) throws -> StoredObject?

    /// Writes that were started before `cutoff` and never finished, which the listing does not show:
    /// S3's incomplete multipart uploads (kept, and billed, until aborted), each as its key with
    /// the upload's start as `modified`. None for a disk, whose partial files the walk lists.
    func incompleteWrites(startedBefore cutoff: Date) throws -> [StoredObject]

    /// Moves an object to another key of the same store (a rename on disk; a server-side copy,
    /// then a delete, in S3), replacing what is there.
    func move(_ key: String, to newKey: String) throws

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

extension ObjectStore {
    /// Stores a local file in a directory the caller trusts (only the file itself must not be a link).
    @discardableResult
    public func upload(file path: String, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject {
        try upload(file: RootedPath(file: path), to: key, sha256: sha256, shouldStop: shouldStop)
    }
}

/// Opens a local file that is to be stored, without following links below its root, and returns
/// its descriptor (the caller closes it) and size.
func openSource(_ file: RootedPath, location: String, object key: String) throws -> (fd: Int32, size: Int64) {
    do {
        return try file.openForReading()
    } catch let error as ArchiveError {
        throw StorageError(error, location: location, object: key)
    }
}
