import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `ccat files scan` finds under a SOURCE root, walked with `openat` from the root so that no
/// symbolic link is ever followed and no path grows past PATH_MAX. Names are taken as the raw
/// bytes the file system holds: one that is not UTF-8 cannot be registered, and is reported.
public enum SourceTree {
    public enum Entry: Sendable, Equatable {
        /// A regular file, its path relative to the root.
        case file(path: String, size: Int64, modified: Date)
        /// Something left alone, with why: a symbolic link, a name that is not UTF-8, a directory
        /// that cannot be read. `path` shows undecodable bytes as U+FFFD.
        case skipped(path: String, reason: String)
    }

    /// Every entry below `root`, depth first. Names starting with '.' (hidden files, unfinished
    /// copies) are passed over silently.
    public static func walk(root: String) throws -> [Entry] {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw StorageError(kind: .io, location: root, object: "", problem: "cannot read \(root): \(String(cString: strerror(errno)))")
        }
        var entries: [Entry] = []
        walk(directory: fd, prefix: "", into: &entries)
        return entries
    }

    /// Reads the directory `fd` (and closes it).
    private static func walk(directory fd: Int32, prefix: String, into entries: inout [Entry]) {
        guard let stream = fdopendir(fd) else {
            close(fd)
            entries.append(.skipped(path: prefix, reason: "cannot read the directory: \(String(cString: strerror(errno)))"))
            return
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes.first == UInt8(ascii: ".") { continue }
            names.append(bytes)
        }
        for bytes in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let shown = prefix + String(decoding: bytes, as: UTF8.self)
            guard let name = String(validating: bytes, as: UTF8.self) else {
                entries.append(.skipped(path: shown, reason: "the name is not valid UTF-8; rename it"))
                continue
            }
            let path = prefix + name
            let cName = bytes.map { CChar(bitPattern: $0) } + [0]
            var info = stat()
            guard fstatat(dirfd(stream), cName, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                entries.append(.skipped(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))"))
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
                entries.append(.file(path: path, size: Int64(info.st_size), modified: modified))
            case S_IFDIR:
                let child = openat(dirfd(stream), cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    entries.append(.skipped(path: path, reason: "cannot open the directory: \(String(cString: strerror(errno)))"))
                    continue
                }
                walk(directory: child, prefix: path + "/", into: &entries)
            case S_IFLNK:
                entries.append(.skipped(path: path, reason: "a symbolic link; files under a root are never read through links"))
            default:
                entries.append(.skipped(path: path, reason: "not a regular file"))
            }
        }
    }
}
