import CGlibcExtras
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A path below a trusted directory: a location's root, or a directory the runner made itself.
/// Every component below the root is opened with `openat(..., O_NOFOLLOW)` from the one before,
/// so a symbolic link anywhere below the root is refused, never followed, and a directory that is
/// swapped for a link while the work runs cannot redirect it. The root itself is the
/// administrator's choice and may be a link (to a mount, say).
public struct RootedPath: Sendable, Hashable, CustomStringConvertible {
    public let root: String
    /// The components below the root, separated by '/'; empty for the root itself.
    public let relative: String

    public init(root: String, relative: String = "") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.relative = relative
    }

    /// A file whose directory is trusted as it is (one the caller made, or a test's): only the
    /// file itself is opened without following a link.
    public init(file path: String) {
        let url = URL(fileURLWithPath: path)
        self.init(root: url.deletingLastPathComponent().path, relative: url.lastPathComponent)
    }

    public var path: String { relative.isEmpty ? root : (root == "/" ? "/" : root + "/") + relative }
    public var description: String { path }

    /// The path `more` (relative, '/'-separated) below this one.
    public func appending(_ more: String) -> RootedPath {
        RootedPath(root: root, relative: relative.isEmpty ? more : relative + "/" + more)
    }

    var parts: [String] { relative.split(separator: "/").map(String.init) }

    // MARK: Opening

    /// Opens the directory this path names (the root when `relative` is empty), creating missing
    /// directories with `mode` when `creating`. The caller closes the descriptor. Directories are
    /// opened with O_PATH: walking through them needs search permission only (a runner-owned
    /// directory of mode 0711 is passed by the requester, as with a plain path).
    public func openDirectory(creating: Bool = false, mode: mode_t = 0o755) throws -> Int32 {
        try Self.walk(root: root, through: parts[...], creating: creating, mode: mode, shown: path)
    }

    /// The directory holding the last component, opened (the caller closes it), and that
    /// component's name.
    public func openParent(creating: Bool = false, mode: mode_t = 0o755) throws -> (fd: Int32, name: String) {
        let parts = parts
        guard let name = parts.last else {
            throw ArchiveError(kind: .io, path: root, problem: "a location's root is not a file")
        }
        try Self.checkName(name, shown: path)
        return (try Self.walk(root: root, through: parts.dropLast(), creating: creating, mode: mode, shown: path), name)
    }

    /// `openParent()`, or nil when a directory on the way (or the root) is not there.
    func existingParent() throws -> (fd: Int32, name: String)? {
        do {
            return try openParent()
        } catch let error as ArchiveError where error.kind == .notFound {
            return nil
        }
    }

    /// Opens the regular file for reading; a link or anything but a regular file is refused.
    public func openForReading() throws -> (fd: Int32, size: Int64) {
        let (directory, name) = try openParent()
        defer { close(directory) }
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Self.refusal(errno: errno, in: directory, name: name, shown: path, what: "cannot open") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = posixError("cannot stat", path)
            close(fd)
            throw error
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw ArchiveError(kind: .io, path: path, problem: "not a regular file")
        }
        // O_NONBLOCK kept a FIFO from blocking the open; reads of a regular file ignore it.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int64(info.st_size))
    }

    /// The entry's status without following it (nil when there is none, or a directory on the
    /// way is missing).
    public func status() throws -> stat? {
        guard let (directory, name) = try existingParent() else { return nil }
        defer { close(directory) }
        var info = stat()
        guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return nil }
            throw posixError("cannot stat", path)
        }
        return info
    }

    // MARK: Removing

    /// Removes the file (or link, which is not followed); one that is not there is not an error.
    public func unlinkFile() throws {
        guard let (directory, name) = try existingParent() else { return }
        defer { close(directory) }
        guard unlinkat(directory, name, 0) == 0 || errno == ENOENT else { throw posixError("cannot delete", path) }
        Self.syncDirectory(directory)
    }

    /// Removes the file or directory tree; links inside are removed, never followed. One that is
    /// not there is not an error.
    public func removeTree() throws {
        guard let (directory, name) = try existingParent() else { return }
        defer { close(directory) }
        try Self.remove(name, in: directory, shown: path)
        Self.syncDirectory(directory)
    }

    static func remove(_ name: String, in directory: Int32, shown: String) throws {
        if unlinkat(directory, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw posixError("cannot delete", shown) }
        let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard child >= 0 else { throw posixError("cannot open directory", shown) }
        guard let stream = fdopendir(child) else {
            close(child)
            throw posixError("cannot read directory", shown)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes == [46] || bytes == [46, 46] { continue }
            names.append(String(decoding: bytes, as: UTF8.self))
        }
        for entry in names { try remove(entry, in: dirfd(stream), shown: shown + "/" + entry) }
        guard unlinkat(directory, name, AT_REMOVEDIR) == 0 || errno == ENOENT else { throw posixError("cannot remove directory", shown) }
    }

    // MARK: Walking

    /// fsync of a directory held with O_PATH (which cannot be synced itself); best effort, as a
    /// directory the user may search but not read cannot be opened for it.
    public static func syncDirectory(_ directory: Int32) {
        let fd = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    static func checkName(_ name: String, shown: String) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(0) else {
            throw ArchiveError(kind: .unsafeMember, path: shown, problem: "'.', '..' and empty components are not allowed below a location's root")
        }
    }

    static func walk(root: String, through parts: ArraySlice<String>, creating: Bool, mode: mode_t, shown: String) throws -> Int32 {
        let directoryFlags = ccat_o_path | O_DIRECTORY | O_CLOEXEC
        var fd = open(root, directoryFlags)
        if fd < 0, errno == ENOENT, creating {
            // A root that is not there yet is made for a write (the administrator's path, as given).
            try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            fd = open(root, directoryFlags)
        }
        guard fd >= 0 else {
            if errno == ENOENT {
                throw ArchiveError(kind: .notFound, path: root, problem: "the root does not exist, or is not mounted here")
            }
            throw posixError("cannot open the root", root)
        }
        for part in parts {
            do {
                try checkName(part, shown: shown)
            } catch {
                close(fd)
                throw error
            }
            var next = openat(fd, part, directoryFlags | O_NOFOLLOW)
            if next < 0, errno == ENOENT, creating {
                if mkdirat(fd, part, mode) != 0, errno != EEXIST {
                    let error = posixError("cannot create a directory on the way to", shown)
                    close(fd)
                    throw error
                }
                next = openat(fd, part, directoryFlags | O_NOFOLLOW)
            }
            guard next >= 0 else {
                let error = refusal(errno: errno, in: fd, name: part, shown: shown, what: "cannot open a directory on the way to")
                close(fd)
                throw error
            }
            close(fd)
            fd = next
        }
        return fd
    }

    /// Why `name` in `directory` could not be opened: a link is named as one.
    static func refusal(errno code: Int32, in directory: Int32, name: String, shown: String, what: String) -> ArchiveError {
        var info = stat()
        if fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            return ArchiveError(kind: .symbolicLink, path: shown,
                                problem: "'\(name)' on the way is a symbolic link; files under a location's root are never reached through links")
        }
        if code == ENOTDIR {
            return ArchiveError(kind: .io, path: shown, problem: "'\(name)' on the way is not a directory")
        }
        if code == ENOENT { return ArchiveError(kind: .notFound, path: shown, problem: "\(what): no such file or directory") }
        return posixError(what, shown, errno: code)
    }
}
