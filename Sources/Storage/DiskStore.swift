import Archiving
import CGlibcExtras
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A POSIX tree under a location's root. Paths never leave the root: keys are checked, and the
/// directories they resolve to (after symbolic links) must lie inside it.
public struct DiskStore: ObjectStore {
    public let name: String
    public let root: String

    public init(name: String, root: String) {
        self.name = name
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public var description: String { "\(name) (\(root))" }

    func failure(_ kind: StorageError.Kind, _ key: String?, _ problem: String) -> StorageError {
        StorageError(kind: kind, location: description, object: key, problem: problem)
    }

    /// `key` below the root: every access through it opens one component at a time and follows
    /// no link.
    public func rooted(_ key: String) throws -> RootedPath {
        try validateKey(key, location: description)
        return RootedPath(root: root, relative: key)
    }

    /// The absolute path of `key`, for messages and for tools that take a path (rsync, bbcp).
    /// With `creatingParent`, its directory is created first; either way no directory on the
    /// way may be a symbolic link.
    public func path(of key: String, creatingParent: Bool = false) throws -> String {
        let file = try rooted(key)
        try local(key) {
            do {
                close(try file.openParent(creating: creatingParent).fd)
            } catch let error as ArchiveError where error.kind == .notFound && !creatingParent {
                if !FileManager.default.fileExists(atPath: root) { throw error }
            }
        }
        return file.path
    }

    /// Runs local file work, reporting its problems as this location's.
    func local<T>(_ key: String?, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ArchiveError {
            throw StorageError(error, location: description, object: key)
        }
    }

    public func head(_ key: String) throws -> StoredObject? {
        let file = try rooted(key)
        return try local(key) {
            guard let info = try file.status() else { return nil }
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw failure(.invalidPath, key, "\(file.path) exists but is not a regular file")
            }
            return StoredObject(key: key, size: Int64(info.st_size), sha256: nil)
        }
    }

    public func holds(_ key: String, size: Int64, sha256: String) throws -> Bool {
        guard let object = try head(key), object.size == size else { return false }
        let file = try rooted(key)
        return try local(key) { try FileChecksum.sha256(of: file).sha256 == sha256 }
    }

    @discardableResult
    public func upload(file source: RootedPath, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject {
        let destination = try rooted(key)
        let copied = try Self.copyVerified(from: source, to: { try AtomicFile(creating: destination) }, expectedSize: nil, expectedSHA256: sha256,
                                           shouldStop: shouldStop, location: description, key: key)
        return StoredObject(key: key, size: copied.size, sha256: copied.sha256)
    }

    @discardableResult
    public func download(_ key: String, to path: String, expectedSize: Int64?, expectedSHA256: String?,
                         shouldStop: @escaping ShouldStop) throws -> StoredObject {
        let source = try rooted(key)
        guard try head(key) != nil else { throw failure(.notFound, key, "no such file under the location's root") }
        let copied = try Self.copyVerified(from: source, to: { try AtomicFile(creating: path) }, expectedSize: expectedSize,
                                           expectedSHA256: expectedSHA256, shouldStop: shouldStop, location: description, key: key)
        return StoredObject(key: key, size: copied.size, sha256: copied.sha256)
    }

    public func delete(_ key: String) throws {
        let file = try rooted(key)
        try local(key) {
            let parent = (key as NSString).deletingLastPathComponent
            let partial = AtomicFile.temporaryName(for: (key as NSString).lastPathComponent)
            try RootedPath(root: root, relative: parent.isEmpty ? partial : "\(parent)/\(partial)").unlinkFile()
            try file.unlinkFile()
        }
    }

    public func list(prefix: String) throws -> [StoredObject] {
        var result: [StoredObject] = []
        try listPages(prefix: prefix, pageSize: 10_000) { page in
            result += page.filter { !AtomicFile.isTemporaryName(($0.key as NSString).lastPathComponent) }
        }
        return result.sorted { $0.key < $1.key }
    }

    public func readBack(_ key: String, shouldStop: @escaping ShouldStop) throws -> StoredObject? {
        guard try head(key) != nil else { return nil }
        let file = try rooted(key)
        let read = try local(key) { try FileChecksum.sha256(of: file) }
        return StoredObject(key: key, size: read.size, sha256: read.sha256)
    }

    /// A rename below the root (the new key's directories are created), then both directories
    /// are synced.
    public func move(_ key: String, to newKey: String) throws {
        let from = try rooted(key)
        let to = try rooted(newKey)
        try local(key) {
            let source = try from.openParent(creating: false)
            defer { close(source.fd) }
            let destination = try to.openParent(creating: true)
            defer { close(destination.fd) }
            guard renameat(source.fd, source.name, destination.fd, destination.name) == 0 else {
                throw failure(errno == ENOENT ? .notFound : .io, key, "cannot move \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
            }
            RootedPath.syncDirectory(destination.fd)
            RootedPath.syncDirectory(source.fd)
        }
    }

    public func probe() -> LocationProbe {
        var info = statvfs()
        guard statvfs(root, &info) == 0 else {
            return LocationProbe(reachable: false, errorMessage: "\(root): \(String(cString: strerror(errno)))")
        }
        guard access(root, R_OK | W_OK | X_OK) == 0 else {
            return LocationProbe(reachable: false, errorMessage: "\(root) is not readable and writable by this user: \(String(cString: strerror(errno)))")
        }
        let block = Int64(info.f_frsize)
        let total = Int64(info.f_blocks) * block
        let free = Int64(info.f_bavail) * block
        return LocationProbe(reachable: true, totalBytes: total, freeBytes: free, usedBytes: total - Int64(info.f_bfree) * block)
    }

    /// Refuses to start writing `bytes` when the file system under the root has less free (for
    /// this user): the caller waits for space to be freed rather than filling the disk and failing
    /// halfway. A root whose free space cannot be read is left to the write itself.
    public func requireSpace(_ bytes: Int64, for what: String) throws {
        var info = statvfs()
        guard statvfs(root, &info) == 0 else { return }
        let free = Int64(info.f_bavail) * Int64(info.f_frsize)
        guard free < bytes else { return }
        throw failure(.noSpace, nil, "\(what) needs \(bytes) bytes, but \(free) are free; it waits for space "
                      + "(archived copies are deleted by cleanup) and is tried again without using up an attempt")
    }

    /// Copies a file with `copy_file_range` (in-kernel; server-side on NFS 4.2 and similar) to
    /// `<destination>`'s temporary name, then reads the copy back to verify size and SHA-256,
    /// then fsyncs and renames it into place. The source is hashed too, when no checksum is
    /// expected, so the copy is always compared against something.
    static func copyVerified(from source: RootedPath, to create: () throws -> AtomicFile, expectedSize: Int64?, expectedSHA256: String?,
                             shouldStop: ShouldStop, location: String, key: String) throws -> (size: Int64, sha256: String) {
        let (input, size) = try openSource(source, location: location, object: key)
        defer { close(input) }
        if let expectedSize, expectedSize != size {
            throw StorageError(kind: .checksumMismatch, location: location, object: key,
                               problem: "\(source) has \(size) bytes, but \(expectedSize) were recorded")
        }
        func local<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as ArchiveError { throw StorageError(error, location: location, object: key) }
        }
        let want = try expectedSHA256 ?? local { try FileChecksum.sha256(of: source).sha256 }
        let output = try local(create)
        let destination = output.path
        do {
            var remaining = size
            var useRange = true
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            while remaining > 0 {
                if shouldStop() { throw StopRequestedDuringCopy() }
                // 16 MiB per call: a stop request (SIGTERM, walltime) is seen within one chunk.
                let chunk = Int(min(remaining, 16 << 20))
                var copied = -1
                if useRange {
                    copied = ccat_copy_file_range(input, output.fd, chunk)
                    if copied < 0, [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(errno) { useRange = false }
                    else if copied < 0, errno != EINTR {
                        throw StorageError(kind: [ENOSPC, EDQUOT].contains(errno) ? .noSpace : .io, location: location, object: key,
                                           problem: "copy to \(destination) failed: \(String(cString: strerror(errno)))")
                    }
                }
                if !useRange {
                    copied = read(input, buffer.baseAddress, min(chunk, buffer.count))
                    if copied < 0, errno != EINTR {
                        throw StorageError(kind: .io, location: location, object: key, problem: "cannot read \(source): \(String(cString: strerror(errno)))")
                    }
                    if copied > 0 { try local { try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<copied])) } }
                }
                if copied == 0 {
                    throw StorageError(kind: .io, location: location, object: key, problem: "\(source) shrank while it was copied")
                }
                if copied > 0 {
                    remaining -= Int64(copied)
                    if useRange { output.didWrite(copied) }
                }
            }
            let written = try local { try output.readBack() }
            guard written.size == size, written.sha256 == want else {
                throw StorageError(kind: .checksumMismatch, location: location, object: key,
                                   problem: "the copy at \(destination) has SHA-256 \(written.sha256) (\(written.size) bytes), expected \(want) (\(size) bytes)")
            }
            try local { try output.commit() }
            return written
        } catch {
            output.discard()
            throw error
        }
    }
}

/// Thrown by copies that were told to stop; the runner maps it to its own stop handling.
public struct StopRequestedDuringCopy: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the transfer was stopped" }
}
