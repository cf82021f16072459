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

    /// The absolute path of `key`. With `creatingParent`, its directory is created first; either
    /// way, an existing directory on the way must resolve inside the root.
    public func path(of key: String, creatingParent: Bool = false) throws -> String {
        try validateKey(key, location: description)
        let path = root + "/" + key
        let parent = (path as NSString).deletingLastPathComponent
        if creatingParent {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw failure(.io, key, "cannot create \(parent): \(error.localizedDescription)")
            }
        }
        // The deepest existing ancestor must resolve inside the root (a symbolic link on the way
        // could point anywhere).
        var existing = parent
        while !FileManager.default.fileExists(atPath: existing), existing.count > root.count {
            existing = (existing as NSString).deletingLastPathComponent
        }
        guard let resolvedRoot = realpath(root), let resolved = realpath(existing) else {
            if !FileManager.default.fileExists(atPath: root) {
                throw failure(.io, key, "the location's root does not exist or is not mounted here")
            }
            return path
        }
        if !(resolved == resolvedRoot || resolved.hasPrefix(resolvedRoot == "/" ? "/" : resolvedRoot + "/")) {
            throw failure(.invalidPath, key, "resolves to \(resolved), outside the location's root \(resolvedRoot)")
        }
        return path
    }

    public func head(_ key: String) throws -> StoredObject? {
        let path = try path(of: key)
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw failure(.io, key, "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw failure(.invalidPath, key, "\(path) exists but is not a regular file")
        }
        return StoredObject(key: key, size: Int64(info.st_size), sha256: nil)
    }

    public func holds(_ key: String, size: Int64, sha256: String) throws -> Bool {
        guard let object = try head(key), object.size == size else { return false }
        return try FileChecksum.sha256(of: path(of: key)).sha256 == sha256
    }

    public func upload(file source: String, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject {
        let destination = try path(of: key, creatingParent: true)
        let copied = try Self.copyVerified(from: source, to: destination, expectedSize: nil, expectedSHA256: sha256,
                                           shouldStop: shouldStop, location: description, key: key)
        return StoredObject(key: key, size: copied.size, sha256: copied.sha256)
    }

    public func download(_ key: String, to path: String, expectedSize: Int64?, expectedSHA256: String?,
                         shouldStop: @escaping ShouldStop) throws -> StoredObject {
        let source = try self.path(of: key)
        guard try head(key) != nil else { throw failure(.notFound, key, "no such file under the location's root") }
        let copied = try Self.copyVerified(from: source, to: path, expectedSize: expectedSize, expectedSHA256: expectedSHA256,
                                           shouldStop: shouldStop, location: description, key: key)
        return StoredObject(key: key, size: copied.size, sha256: copied.sha256)
    }

    public func delete(_ key: String) throws {
        let path = try path(of: key)
        unlink(AtomicFile.temporaryPath(for: path))
        guard unlink(path) == 0 || errno == ENOENT || errno == ENOTDIR else {
            throw failure(.io, key, "cannot delete \(path): \(String(cString: strerror(errno)))")
        }
        syncDirectory(path)
    }

    public func list(prefix: String) throws -> [StoredObject] {
        var result: [StoredObject] = []
        guard let walker = FileManager.default.enumerator(atPath: root) else {
            throw failure(.io, nil, "cannot read the location's root")
        }
        while let relative = walker.nextObject() as? String {
            guard relative.hasPrefix(prefix), walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular else { continue }
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix("."), name.hasSuffix(".ccat-partial") { continue }
            let size = (walker.fileAttributes?[.size] as? NSNumber)?.int64Value ?? 0
            result.append(StoredObject(key: relative, size: size, sha256: nil))
        }
        return result.sorted { $0.key < $1.key }
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

    /// Copies a file with `copy_file_range` (in-kernel; server-side on NFS 4.2 and similar) to
    /// `<destination>`'s temporary name, then reads the copy back to verify size and SHA-256,
    /// then fsyncs and renames it into place. The source is hashed too, when no checksum is
    /// expected, so the copy is always compared against something.
    static func copyVerified(from source: String, to destination: String, expectedSize: Int64?, expectedSHA256: String?,
                             shouldStop: ShouldStop, location: String, key: String) throws -> (size: Int64, sha256: String) {
        let (input, size) = try openSource(source, location: location, object: key)
        defer { close(input) }
        if let expectedSize, expectedSize != size {
            throw StorageError(kind: .checksumMismatch, location: location, object: key,
                               problem: "\(source) has \(size) bytes, but \(expectedSize) were recorded")
        }
        let want = try expectedSHA256 ?? FileChecksum.sha256(of: source).sha256
        let output = try AtomicFile(creating: destination)
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
                        throw StorageError(kind: .io, location: location, object: key, problem: "copy to \(destination) failed: \(String(cString: strerror(errno)))")
                    }
                }
                if !useRange {
                    copied = read(input, buffer.baseAddress, min(chunk, buffer.count))
                    if copied < 0, errno != EINTR {
                        throw StorageError(kind: .io, location: location, object: key, problem: "cannot read \(source): \(String(cString: strerror(errno)))")
                    }
                    if copied > 0 { try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<copied])) }
                }
                if copied == 0 {
                    throw StorageError(kind: .io, location: location, object: key, problem: "\(source) shrank while it was copied")
                }
                if copied > 0 {
                    remaining -= Int64(copied)
                    if useRange { output.didWrite(copied) }
                }
            }
            let written = try FileChecksum.sha256(of: output.temporaryPath)
            guard written.size == size, written.sha256 == want else {
                throw StorageError(kind: .checksumMismatch, location: location, object: key,
                                   problem: "the copy at \(destination) has SHA-256 \(written.sha256) (\(written.size) bytes), expected \(want) (\(size) bytes)")
            }
            try output.commit()
            return written
        } catch {
            output.discard()
            throw error
        }
    }
}

/// Thrown by copies that were told to stop; the runner maps it to its own stop handling.
public struct StopRequestedDuringCopy: Error, CustomStringConvertible {
    public var description: String { "the transfer was stopped" }
}

func syncDirectory(_ path: String) {
    let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
        fsync(fd)
        close(fd)
    }
}

func realpath(_ path: String) -> String? {
    guard let resolved = Glibc.realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}
