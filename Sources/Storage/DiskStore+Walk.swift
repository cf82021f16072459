import Archiving
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension DiskStore {
    /// Partial files are in the walk itself.
    public func incompleteWrites(startedBefore cutoff: Date) throws -> [StoredObject] { [] }

    /// Refuses a root that is missing or not a directory: on a node without the mount, every
    /// object would look gone.
    public func requireRoot() throws {
        var info = stat()
        guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw failure(.notFound, nil, "the location's root \(root) is missing or not a directory (an unmounted file system?)")
        }
    }

    static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// A walk of the tree below the root, a page of regular files at a time: each directory is
    /// opened from the root one component at a time without following links (`RootedPath`), read
    /// with `readdir`, and each regular file's size and mtime taken with `fstatat` (no link
    /// followed). Memory holds one page and the names of directories still to read, one
    /// directory is open at a time.
    public func listPages(prefix: String, pageSize: Int, _ page: ([StoredObject]) throws -> Void) throws {
        try requireRoot()
        // Directories still to read, by their path below the root.
        var pending = [""]
        var batch: [StoredObject] = []
        batch.reserveCapacity(pageSize)
        while let relativeDirectory = pending.popLast() {
            let found: Int32
            do {
                found = try local(relativeDirectory) { try RootedPath(root: root, relative: relativeDirectory).openDirectory() }
            } catch let error as StorageError where error.kind == .notFound && !relativeDirectory.isEmpty {
                continue  // removed while we walked
            }
            // The walk opens with O_PATH (search permission only); reading needs a descriptor of its own.
            let fd = openat(found, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            close(found)
            guard fd >= 0, let stream = fdopendir(fd) else {
                let problem = String(cString: strerror(errno))
                if fd >= 0 { close(fd) }
                throw failure(.io, relativeDirectory, "cannot read the directory: \(problem)")
            }
            let directory = (fd: fd, relative: relativeDirectory)
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                // The name is read where it lies: a record is only as long as its name, so copying the
                // whole `dirent` could read past the end of readdir's buffer.
                let name = String(cString: (UnsafeRawPointer(entry) + Self.nameOffset).assumingMemoryBound(to: CChar.self))
                if name == "." || name == ".." { continue }
                let relative = directory.relative.isEmpty ? name : directory.relative + "/" + name
                var status = stat()
                guard fstatat(dirfd(stream), name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                    if errno == ENOENT { continue }  // removed while we walked
                    throw failure(.io, relative, "cannot stat: \(String(cString: strerror(errno)))")
                }
                switch status.st_mode & S_IFMT {
                case S_IFDIR:
                    // Only directories the prefix can still match are entered.
                    guard prefix.isEmpty || prefix.hasPrefix(relative + "/") || (relative + "/").hasPrefix(prefix) else { continue }
                    pending.append(relative)
                case S_IFREG:
                    guard relative.hasPrefix(prefix) else { continue }
                    let modified = Date(timeIntervalSince1970: Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9)
                    batch.append(StoredObject(key: relative, size: Int64(status.st_size), sha256: nil, modified: modified))
                    if batch.count >= pageSize {
                        try page(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                default:
                    continue
                }
            }
        }
        if !batch.isEmpty { try page(batch) }
    }
}
