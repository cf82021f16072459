import CGlibcExtras
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Lower-case hexadecimal, as `sha256sum` prints it.
public func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(64)
    for byte in digest {
        bytes.append(digits[Int(byte >> 4)])
        bytes.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// An I/O or format problem with a file or archive, naming it and (for archives) the member.
public struct ArchiveError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// Reading or writing a file failed (permissions, disk full, missing file).
        case io
        /// The archive is not a readable tar file, or is truncated.
        case format
        /// A member would land outside the target, or is a link, device or FIFO.
        case unsafeMember
        /// Content does not match its recorded size or checksum.
        case checksumMismatch
        /// The file, or a directory on the way to it, does not exist.
        case notFound
        /// A symbolic link under a location's root, which is never followed.
        case symbolicLink
        /// The file system is full or the quota is used up: the work waits for space.
        case noSpace
    }
    public var kind: Kind
    public var path: String
    public var member: String?
    public var problem: String

    public init(kind: Kind, path: String, member: String? = nil, problem: String) {
        self.kind = kind
        self.path = path
        self.member = member
        self.problem = problem
    }

    public var description: String {
        "\(path)\(member.map { ": member \($0.debugDescription)" } ?? ""): \(problem)"
    }
}

func posixError(_ what: String, _ path: String, errno code: Int32 = errno) -> ArchiveError {
    let kind: ArchiveError.Kind = switch code {
    case ENOSPC, EDQUOT: .noSpace
    case ENOENT: .notFound
    default: .io
    }
    return ArchiveError(kind: kind, path: path, problem: "\(what): \(String(cString: strerror(code)))")
}

/// Reads with a reusable buffer; the buffer size is the unit of every read and hash update. Small
/// enough that a chunk stays in the core's L2 cache from `read` through hashing, libarchive's copy
/// and `write`: with 1 MiB chunks the kernel's copies missed the cache and packaging spent three
/// times the system time (measured with bench/storage).
let ioBufferSize = 256 << 10

public enum FileChecksum {
    /// SHA-256 and size of a file, read once in 256 KiB blocks; a link in its place is refused.
    public static func sha256(of path: String) throws -> (size: Int64, sha256: String) {
        try sha256(of: RootedPath(file: path))
    }

    /// SHA-256 and size of a file below a root, reached without following any link.
    public static func sha256(of file: RootedPath) throws -> (size: Int64, sha256: String) {
        let (fd, _) = try file.openForReading()
        defer { close(fd) }
        return try sha256(fd: fd, shown: file.path)
    }

    /// Reads `fd` from its start with `pread` (its offset is left alone), so it also reads back
    /// a file that is being written.
    static func sha256(fd: Int32, shown path: String) throws -> (size: Int64, sha256: String) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        var hasher = SHA256()
        var size: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ioBufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let count = pread(fd, buffer.baseAddress, ioBufferSize, off_t(size))
            if count < 0 {
                if errno == EINTR { continue }
                throw posixError("cannot read", path)
            }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            size += Int64(count)
        }
        return (size, hex(hasher.finalize()))
    }
}

/// Writes a file the safe way: under a temporary name in the same directory, fsync, rename over
/// the final name, fsync the directory. A crash leaves either the old state or the complete file,
/// plus at worst the temporary file, which the next attempt removes (its name is fixed).
/// `commit` and `discard` close the descriptor once, whichever runs first (a failed commit
/// followed by the caller's discard never closes a descriptor twice).
///
/// Large files are handed to the kernel's writeback as they are written (`sync_file_range`, one
/// window behind), so the disk works while the caller is still hashing and writing, the final
/// fsync has little left to do, and a multi-gigabyte write never piles up as dirty page cache.
/// The hints report no errors; any write error surfaces at the fsync in `commit`.
public final class AtomicFile {
    public let path: String
    public let temporaryPath: String
    public let fd: Int32
    /// The directory the file is in, held open: the rename and its fsync happen there even if
    /// something renames or replaces a directory above it meanwhile.
    private let directory: Int32
    private let name: String
    private let temporaryName: String
    private var finished = false
    /// Bytes written so far, the end of the range handed to writeback, and the end of the range
    /// known to be on disk.
    private var written: Int64 = 0
    private var handedOff: Int64 = 0
    private var settled: Int64 = 0
    static let writebackWindow: Int64 = 32 << 20

    /// The temporary name for `path`: hidden, in the same directory, the same on every attempt.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(temporaryName(for: url.lastPathComponent)).path
    }

    /// A new file at `path`; missing directories are created, the directories above are trusted.
    public convenience init(creating path: String, mode: mode_t = 0o644) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError(kind: .io, path: directory, problem: "cannot create directory: \(error.localizedDescription)")
        }
        try self.init(creating: RootedPath(file: path), mode: mode)
    }

    /// The temporary name for a file called `name`, beside it.
    public static func temporaryName(for name: String) -> String { ".\(name).ccat-partial" }

    /// Whether a file name is one of these temporary names.
    public static func isTemporaryName(_ name: String) -> Bool { name.hasPrefix(".") && name.hasSuffix(".ccat-partial") }

    /// A new file below a root, its missing directories created; no link on the way is followed.
    public init(creating file: RootedPath, mode: mode_t = 0o644) throws {
        path = file.path
        temporaryPath = Self.temporaryPath(for: path)
        (directory, name) = try file.openParent(creating: true)
        temporaryName = Self.temporaryName(for: name)
        unlinkat(directory, temporaryName, 0)
        fd = openat(directory, temporaryName, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let error = posixError("cannot create", temporaryPath)
            close(directory)
            throw error
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw posixError("cannot write", temporaryPath)
            }
            offset += written
        }
        didWrite(bytes.count)
    }

    /// Accounts for `count` bytes written to `fd` by other means (`copy_file_range`), and starts
    /// their writeback once a window has accumulated; waits for the window before it, which keeps
    /// at most two windows of this file dirty.
    public func didWrite(_ count: Int) {
        written += Int64(count)
        guard written - handedOff >= Self.writebackWindow else { return }
        ccat_start_writeback(fd, off_t(handedOff), off_t(written - handedOff))
        if handedOff > settled {
            ccat_finish_writeback(fd, off_t(settled), off_t(handedOff - settled))
            settled = handedOff
        }
        handedOff = written
    }

    /// Size and SHA-256 of what was written, read back from the file (not from memory).
    public func readBack() throws -> (size: Int64, sha256: String) {
        try FileChecksum.sha256(fd: fd, shown: temporaryPath)
    }

    /// fsync, rename into place, fsync the directory.
    public func commit() throws {
        guard !finished else { throw ArchiveError(kind: .io, path: path, problem: "committed or discarded already") }
        guard fsync(fd) == 0 else {
            let code = errno
            discard()
            throw posixError("cannot fsync", temporaryPath, errno: code)
        }
        close(fd)
        finished = true
        defer { close(directory) }
        guard renameat(directory, temporaryName, directory, name) == 0 else {
            let code = errno
            unlinkat(directory, temporaryName, 0)
            throw posixError("cannot rename into \(path)", temporaryPath, errno: code)
        }
        RootedPath.syncDirectory(directory)
    }

    /// Closes and removes the temporary file.
    public func discard() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlinkat(directory, temporaryName, 0)
        close(directory)
    }
}
