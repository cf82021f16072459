import CGlibcExtras
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Whose files staged data become.
struct FileOwner: Sendable, Equatable {
    var uid: UInt32
    var gid: UInt32
    var username: String
}

/// The runner may not act as the requester on the file system.
public struct OwnershipError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Runs `body` on this thread with the file system identity of `owner` (Linux fsuid/fsgid, which
/// are per thread): files are created as theirs and every permission is checked as for them, so
/// a link a user placed in their own directory can never make the runner write elsewhere. nil or
/// the runner's own uid: runs as is.
func asFileOwner<T>(_ owner: FileOwner?, _ body: () throws -> T) throws -> T {
    guard let owner, owner.uid != geteuid() else { return try body() }
    // The runner's own supplementary groups must not lend the requester any access: for the
    // duration, this thread has only the requester's group (a raw per-thread system call).
    let count = getgroups(0, nil)
    var saved = [gid_t](repeating: 0, count: Int(max(count, 0)))
    if count > 0 { _ = getgroups(count, &saved) }
    var only = [owner.gid]
    guard ccat_thread_setgroups(1, &only) == 0 else {
        throw OwnershipError(description: "ccat-runner runs as uid \(geteuid()) and cannot drop its groups to act as \(owner.username) (uid \(owner.uid)): staging for other users needs a runner with CAP_SETUID and CAP_SETGID (root, or 'setcap cap_setuid,cap_setgid,cap_chown+ep ccat-runner')")
    }
    let previousGID = ccat_setfsgid(owner.gid)
    let previousUID = ccat_setfsuid(owner.uid)
    defer {
        _ = ccat_setfsuid(UInt32(bitPattern: previousUID))
        _ = ccat_setfsgid(UInt32(bitPattern: previousGID))
        _ = ccat_thread_setgroups(saved.count, &saved)
    }
    // Both calls return the previous value; asking again tells whether the switch took.
    guard UInt32(bitPattern: ccat_setfsuid(owner.uid)) == owner.uid, UInt32(bitPattern: ccat_setfsgid(owner.gid)) == owner.gid else {
        throw OwnershipError(description: "ccat-runner runs as uid \(geteuid()) and cannot create files as \(owner.username) (uid \(owner.uid)): staging for other users needs a runner with CAP_SETUID and CAP_SETGID (root, or 'setcap cap_setuid,cap_setgid,cap_chown+ep ccat-runner')")
    }
    return try body()
}

/// A directory only the runner may change (created if missing): a plain directory, owned by the
/// runner, writable by nobody else. Downloads live there before they are handed to the requester.
func runnerDirectory(_ path: String, mode: mode_t = 0o711) throws -> String {
    if mkdir(path, mode) != 0 && errno != EEXIST {
        throw OwnershipError(description: "cannot create \(path): \(String(cString: strerror(errno)))")
    }
    var info = stat()
    guard lstat(path, &info) == 0, (UInt32(info.st_mode) & 0o170000) == 0o040000, info.st_uid == geteuid(),
          (UInt32(info.st_mode) & 0o022) == 0 else {
        throw OwnershipError(description: "\(path) must be a directory owned by the runner (uid \(geteuid())) and writable by nobody else; an administrator should move it aside")
    }
    return path
}

/// Makes `<root>/<user>` (mode 0700, owned by the user) if it is not there, and refuses one that
/// belongs to somebody else or is not a plain directory.
func userDirectory(root: String, owner: FileOwner?, name: String) throws -> String {
    let path = root + "/" + name
    var info = stat()
    if lstat(path, &info) != 0 {
        guard errno == ENOENT else { throw OwnershipError(description: "cannot inspect \(path): \(String(cString: strerror(errno)))") }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw OwnershipError(description: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        if let owner, owner.uid != geteuid() || owner.gid != getegid() {
            guard lchown(path, owner.uid, owner.gid) == 0 else {
                let reason = String(cString: strerror(errno))
                rmdir(path)
                throw OwnershipError(description: "cannot give \(path) to \(owner.username) (uid \(owner.uid)): \(reason); staging for other users needs a runner with CAP_CHOWN")
            }
        }
        guard lstat(path, &info) == 0 else { throw OwnershipError(description: "\(path) vanished after it was created") }
    }
    guard (UInt32(info.st_mode) & 0o170000) == 0o040000 else {
        throw OwnershipError(description: "\(path) is not a directory (a link or file is in the way); an administrator should move it aside")
    }
    if let owner, info.st_uid != owner.uid {
        throw OwnershipError(description: "\(path) belongs to uid \(info.st_uid), not to \(owner.username) (uid \(owner.uid)); an administrator should fix its owner")
    }
    return path
}
