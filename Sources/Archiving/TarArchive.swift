import CLibArchive
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One member of a tar archive as packaged or extracted.
public struct ArchiveMember: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int64
    public var sha256: String

    public init(path: String, size: Int64, sha256: String) {
        self.path = path
        self.size = size
        self.sha256 = sha256
    }
}

/// What writing or reading an archive found: its size and SHA-256, and each member's.
public struct ArchiveSummary: Codable, Sendable, Equatable {
    public var size: Int64
    public var sha256: String
    public var members: [ArchiveMember]
}

/// A file to put into an archive: where it is, and its path inside the archive.
public struct ArchiveInput: Sendable, Equatable {
    /// Reached from its location's root without following any link.
    public var source: RootedPath
    public var memberPath: String
    /// When given, the member's checksum must match (the checksum registered for a raw file).
    public var expectedSHA256: String?

    public init(source: RootedPath, memberPath: String, expectedSHA256: String? = nil) {
        self.source = source
        self.memberPath = memberPath
        self.expectedSHA256 = expectedSHA256
    }

    /// A file in a directory the caller trusts; only the file itself must not be a link.
    public init(source: String, memberPath: String, expectedSHA256: String? = nil) {
        self.init(source: RootedPath(file: source), memberPath: memberPath, expectedSHA256: expectedSHA256)
    }
}

/// The bytes libarchive produces or consumes, hashed on their way to or from the file.
final class ArchiveStream {
    let path: String
    let fd: Int32
    /// Set when writing: hashes and writes the archive's bytes on its own thread.
    var writer: HashingWriter?
    var hasher = SHA256()
    var bytes: Int64 = 0
    var error: ArchiveError?
    let buffer: UnsafeMutableRawBufferPointer

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ioBufferSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    var sha256: String { hex(hasher.finalize()) }
}

/// Tar archives in POSIX pax format through libarchive. Every byte of data is read once: writing
/// hashes each member as it is read and the archive as it is written; reading hashes the archive
/// as it is consumed and each member as it is extracted.
public enum TarArchive {
    static let regularFile: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symbolicLink: UInt32 = 0o120000

    /// libarchive converts member names between UTF-8 and the process's character set; under the
    /// "C" locale a non-ASCII name cannot be converted (and libarchive 3.6 crashes writing it). The
    /// runner therefore works in a UTF-8 character set, as bsdtar does after setlocale().
    static let characterSetReady: Bool = {
        if let codeset = nl_langinfo(nl_item(CODESET)), String(cString: codeset) == "UTF-8" { return true }
        return setlocale(LC_CTYPE, "C.UTF-8") != nil
    }()

    static func requireUTF8(_ path: String) throws {
        guard characterSetReady else {
            throw ArchiveError(kind: .io, path: path, problem: "no UTF-8 locale (C.UTF-8) is available, so member names cannot be converted")
        }
    }

    // MARK: Writing

    /// An upper bound for the size of an archive of members of these sizes: each member's data
    /// padded to 512 bytes, its header and a pax header for a long or non-ASCII name, and the
    /// end-of-archive marker.
    public static func sizeBound(memberSizes: [Int64]) -> Int64 {
        memberSizes.reduce(Int64(1024)) { total, size in total + (size + 511) / 512 * 512 + 2048 }
    }

    /// Writes `inputs` into a new archive at `destination` (atomically: temporary name, fsync,
    /// rename). A member whose checksum differs from `expectedSHA256` stops the write; nothing is
    /// left at `destination`. `progress` gets the bytes read so far; an error it throws (a stop
    /// request) abandons the archive the same way.
    public static func create(at destination: String, inputs: [ArchiveInput],
                              progress: ((Int64) throws -> Void)? = nil) throws -> ArchiveSummary {
        try create(output: AtomicFile(creating: destination), inputs: inputs, progress: progress)
    }

    /// The same, at a path below a location's root reached without following links.
    public static func create(at destination: RootedPath, inputs: [ArchiveInput],
                              progress: ((Int64) throws -> Void)? = nil) throws -> ArchiveSummary {
        try create(output: AtomicFile(creating: destination), inputs: inputs, progress: progress)
    }

    static func create(output: AtomicFile, inputs: [ArchiveInput], progress: ((Int64) throws -> Void)?) throws -> ArchiveSummary {
        do {
            let summary = try write(inputs, to: output, progress: progress)
            try output.commit()
            return summary
        } catch {
            output.discard()
            throw error
        }
    }

    static func write(_ inputs: [ArchiveInput], to output: AtomicFile, progress: ((Int64) throws -> Void)?) throws -> ArchiveSummary {
        try requireUTF8(output.path)
        // The stream outlives the archive handle: freeing the handle may still call back into it.
        let stream = ArchiveStream(path: output.temporaryPath, fd: output.fd)
        guard let archive = archive_write_new() else {
            throw ArchiveError(kind: .io, path: output.path, problem: "libarchive could not allocate a writer")
        }
        let writer = HashingWriter(path: output.temporaryPath) { try output.write($0) }
        stream.writer = writer
        var finished = false
        defer {
            // After an error, nothing more is flushed to the (discarded) output.
            if !finished { archive_write_fail(archive) }
            archive_write_free(archive)
            if !finished { writer.cancel() }
            withExtendedLifetime(stream) {}
        }
        let context = Unmanaged.passUnretained(stream).toOpaque()
        archive_write_set_format_pax_restricted(archive)
        // Hand libarchive's output over in ioBufferSize blocks; pad only to the tar record at the end.
        archive_write_set_bytes_per_block(archive, Int32(ioBufferSize))
        archive_write_set_bytes_in_last_block(archive, 1)
        let opened = archive_write_open2(archive, context, nil, { _, context, data, length in
            let stream = Unmanaged<ArchiveStream>.fromOpaque(context!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: length)
            do {
                try stream.writer!.write(bytes)
            } catch {
                stream.error = error as? ArchiveError ?? ArchiveError(kind: .io, path: stream.path, problem: "\(error)")
                return -1
            }
            stream.bytes += Int64(length)
            return length
        }, nil, nil)
        guard opened == ARCHIVE_OK else { throw libarchiveError(archive, path: output.path, stream: stream) }

        var members: [ArchiveMember] = []
        members.reserveCapacity(inputs.count)
        let buffer = stream.buffer
        var done: Int64 = 0
        for input in inputs {
            let member = try validatedMemberPath(input.memberPath, archive: output.path)
            // A link in place of a registered file, or of a directory above it, could point at
            // anything the runner may read (keys, .pgpass): it is refused, never followed.
            let source = input.source.path
            let (fd, _) = try input.source.openForReading()
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw posixError("cannot stat", source) }
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            guard let entry = archive_entry_new() else {
                throw ArchiveError(kind: .io, path: output.path, problem: "libarchive could not allocate an entry")
            }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname_utf8(entry, member)
            archive_entry_set_size(entry, la_int64_t(info.st_size))
            archive_entry_set_filetype(entry, regularFile)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_mtime(entry, info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
            guard archive_write_header(archive, entry) == ARCHIVE_OK else {
                throw libarchiveError(archive, path: output.path, member: member, stream: stream)
            }
            var hasher = SHA256()
            var size: Int64 = 0
            while true {
                let count = Glibc.read(fd, buffer.baseAddress, ioBufferSize)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw posixError("cannot read", source)
                }
                if count == 0 { break }
                guard size + Int64(count) <= Int64(info.st_size) else {
                    throw ArchiveError(kind: .io, path: source, problem: "the file grew while it was being archived")
                }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                hasher.update(bufferPointer: chunk)
                var offset = 0
                while offset < count {
                    let written = archive_write_data(archive, chunk.baseAddress! + offset, count - offset)
                    guard written > 0 else { throw libarchiveError(archive, path: output.path, member: member, stream: stream) }
                    offset += written
                }
                size += Int64(count)
                done += Int64(count)
                try progress?(done)
            }
            guard size == Int64(info.st_size) else {
                throw ArchiveError(kind: .io, path: source, problem: "the file shrank while it was being archived (\(size) of \(info.st_size) bytes)")
            }
            let sha256 = hex(hasher.finalize())
            // The file's own checksum is not repeated: an error message must not tell whoever
            // registered a path what a file they may not read contains.
            if let expected = input.expectedSHA256, expected.lowercased() != sha256 {
                throw ArchiveError(kind: .checksumMismatch, path: source,
                                   problem: "its SHA-256 differs from the \(expected) registered for it (the file changed after registration, or was registered wrongly)")
            }
            guard archive_write_finish_entry(archive) == ARCHIVE_OK else {
                throw libarchiveError(archive, path: output.path, member: member, stream: stream)
            }
            members.append(ArchiveMember(path: member, size: size, sha256: sha256))
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw libarchiveError(archive, path: output.path, stream: stream) }
        let sha256 = try writer.finish()
        finished = true
        return ArchiveSummary(size: stream.bytes, sha256: sha256, members: members)
    }

    // MARK: Reading

    /// Extracts every member under `directory`, refusing unsafe members (absolute paths, `..`,
    /// links, devices, FIFOs) before anything of theirs is written. Files are written under a
    /// temporary name, fsynced and renamed. With `expected`, each member's size and checksum must
    /// match (and no member may be missing or extra).
    public static func extract(_ archivePath: String, into directory: String, expected: [ArchiveMember]? = nil) throws -> ArchiveSummary {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try extract(RootedPath(file: archivePath), into: RootedPath(root: directory), expected: expected)
    }

    /// The same below a location's root: the archive is read, and every directory and file is
    /// created, without following any link below the root.
    public static func extract(_ archive: RootedPath, into directory: RootedPath, expected: [ArchiveMember]? = nil) throws -> ArchiveSummary {
        close(try directory.openDirectory(creating: true))
        return try read(archive, expected: expected) { member, path in
            try ExtractionTarget(root: directory, member: member, archive: path).create()
        }
    }

    /// Reads the whole archive without writing anything: sizes and checksums of it and its members.
    public static func scan(_ archivePath: String, expected: [ArchiveMember]? = nil) throws -> ArchiveSummary {
        try read(RootedPath(file: archivePath), expected: expected) { _, _ in nil }
    }

    /// The same for an archive below a location's root.
    public static func scan(_ archive: RootedPath, expected: [ArchiveMember]? = nil) throws -> ArchiveSummary {
        try read(archive, expected: expected) { _, _ in nil }
    }

    /// Walks the archive; `open` returns where a regular member's bytes go (nil: hash only).
    static func read(_ archive: RootedPath, expected: [ArchiveMember]?,
                     open openTarget: (String, String) throws -> AtomicFile?) throws -> ArchiveSummary {
        let archivePath = archive.path
        try requireUTF8(archivePath)
        let (fd, _) = try archive.openForReading()
        defer { close(fd) }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let stream = ArchiveStream(path: archivePath, fd: fd)
        guard let archive = archive_read_new() else {
            throw ArchiveError(kind: .io, path: archivePath, problem: "libarchive could not allocate a reader")
        }
        defer {
            archive_read_free(archive)
            withExtendedLifetime(stream) {}
        }
        archive_read_support_format_tar(archive)
        let context = Unmanaged.passUnretained(stream).toOpaque()
        let opened = archive_read_open(archive, context, nil, { _, context, block in
            let stream = Unmanaged<ArchiveStream>.fromOpaque(context!).takeUnretainedValue()
            while true {
                let count = Glibc.read(stream.fd, stream.buffer.baseAddress, ioBufferSize)
                if count < 0 {
                    if errno == EINTR { continue }
                    stream.error = posixError("cannot read", stream.path)
                    return -1
                }
                stream.hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: stream.buffer[0..<count]))
                stream.bytes += Int64(count)
                block?.pointee = UnsafeRawPointer(stream.buffer.baseAddress)
                return count
            }
        }, nil)
        guard opened == ARCHIVE_OK else { throw libarchiveError(archive, path: archivePath, stream: stream) }

        let expectedByPath = expected.map { Dictionary($0.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first }) }
        var members: [ArchiveMember] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ioBufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw libarchiveError(archive, path: archivePath, stream: stream)
            }
            let name = archive_entry_pathname_utf8(entry).map { String(cString: $0) }
                ?? archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let type = UInt32(archive_entry_filetype(entry))
            if archive_entry_hardlink(entry) != nil {
                throw ArchiveError(kind: .unsafeMember, path: archivePath, member: name, problem: "hard links are not accepted")
            }
            if type == directory {
                _ = try validatedMemberPath(name.hasSuffix("/") ? String(name.dropLast()) : name, archive: archivePath)
                continue
            }
            guard type == regularFile else {
                let what = type == symbolicLink ? "symbolic links are not accepted" : "only regular files and directories are accepted (device, FIFO or socket)"
                throw ArchiveError(kind: .unsafeMember, path: archivePath, member: name, problem: what)
            }
            let member = try validatedMemberPath(name, archive: archivePath)
            if let expectedByPath, expectedByPath[member] == nil {
                throw ArchiveError(kind: .checksumMismatch, path: archivePath, member: member, problem: "not in the recorded manifest")
            }
            let target = try openTarget(member, archivePath)
            var hasher = SHA256()
            var size: Int64 = 0
            do {
                while true {
                    let count = archive_read_data(archive, buffer.baseAddress, ioBufferSize)
                    if count < 0 { throw libarchiveError(archive, path: archivePath, member: member, stream: stream) }
                    if count == 0 { break }
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                    hasher.update(bufferPointer: chunk)
                    try target?.write(chunk)
                    size += Int64(count)
                }
                let found = ArchiveMember(path: member, size: size, sha256: hex(hasher.finalize()))
                if let want = expectedByPath?[member], want.size != found.size || want.sha256 != found.sha256 {
                    throw ArchiveError(kind: .checksumMismatch, path: archivePath, member: member,
                                       problem: "\(found.size) bytes with SHA-256 \(found.sha256), but \(want.size) bytes with \(want.sha256) were recorded")
                }
                try target?.commit()
                members.append(found)
            } catch {
                target?.discard()
                throw error
            }
        }
        // The reader stops at the end-of-archive marker: hash the rest of the file too.
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, ioBufferSize)
            if count < 0 {
                if errno == EINTR { continue }
                throw posixError("cannot read", archivePath)
            }
            if count == 0 { break }
            stream.hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            stream.bytes += Int64(count)
        }
        if let expected, members.count != expected.count {
            let missing = Set(expected.map(\.path)).subtracting(members.map(\.path)).sorted()
            throw ArchiveError(kind: .checksumMismatch, path: archivePath, member: missing.first,
                               problem: "\(missing.count) recorded member\(missing.count == 1 ? " is" : "s are") missing from the archive")
        }
        return ArchiveSummary(size: stream.bytes, sha256: stream.sha256, members: members)
    }

    // MARK: Safety

    /// A member path must be relative, non-empty, without `.`/`..` components, NUL or empty parts.
    static func validatedMemberPath(_ path: String, archive: String) throws -> String {
        var trimmed = Substring(path)
        while trimmed.hasPrefix("./") { trimmed = trimmed.dropFirst(2) }
        let components = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard !trimmed.isEmpty, !trimmed.hasPrefix("/"), !trimmed.contains("\0"),
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw ArchiveError(kind: .unsafeMember, path: archive, member: path,
                               problem: "member paths must be relative, without '..' or empty components")
        }
        return String(trimmed)
    }

    static func libarchiveError(_ archive: OpaquePointer, path: String, member: String? = nil, stream: ArchiveStream) -> ArchiveError {
        if let error = stream.error { return error }
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
        let code = archive_errno(archive)
        let kind: ArchiveError.Kind = code == EIO || code == ENOSPC || code == EACCES ? .io : .format
        return ArchiveError(kind: kind, path: path, member: member, problem: message)
    }
}

/// Where an extracted member goes: below the target directory, through directories that are
/// real directories (never symbolic links), written atomically.
struct ExtractionTarget {
    let root: RootedPath
    let member: String
    let archive: String

    func create() throws -> AtomicFile {
        let target = root.appending(member)
        do {
            if let info = try target.status(), (info.st_mode & S_IFMT) != S_IFREG {
                throw ArchiveError(kind: .unsafeMember, path: archive, member: member, problem: "\(target.path) exists and is not a regular file")
            }
            return try AtomicFile(creating: target)
        } catch let error as ArchiveError where error.kind == .symbolicLink {
            throw ArchiveError(kind: .unsafeMember, path: archive, member: member,
                               problem: "a symbolic link is in the way at \(target.path) (\(error.problem))")
        }
    }
}
