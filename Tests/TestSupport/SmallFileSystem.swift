import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real, small file system for one test: a tmpfs of `bytes`, mounted on a fresh scratch
/// directory (root only, as CI runs), unmounted when `body` returns. Writes past its size fail
/// with ENOSPC, as on a full buffer disk.
public struct SmallFileSystem: Sendable {
    public let mountPoint: URL

    /// Tests that need it run where a tmpfs can be mounted (root), and always in CI.
    public static var available: Bool { geteuid() == 0 || TestEnvironment.isCI }

    /// Mounted on `directory` (created if missing), or on a fresh scratch directory.
    public static func with<T>(bytes: Int, at directory: URL? = nil, _ body: (SmallFileSystem) async throws -> T) async throws -> T {
        let mountPoint = try directory ?? testScratchDirectory("small-fs")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let mounted = try await offPool {
            try runProcess("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes),mode=0755", "tmpfs", mountPoint.path])
        }
        guard mounted.status == 0 else {
            throw TestSetupError(description: "cannot mount a \(bytes)-byte tmpfs on \(mountPoint.path) (tests with a small file system run as root): \(mounted.stderr)")
        }
        let fileSystem = SmallFileSystem(mountPoint: mountPoint)
        do {
            let result = try await body(fileSystem)
            try await fileSystem.unmount()
            return result
        } catch {
            try? await fileSystem.unmount()
            throw error
        }
    }

    /// Grows (or shrinks) the file system in place, as an administrator freeing or adding space.
    public func resize(bytes: Int) throws {
        let result = try runProcess("/usr/bin/mount", ["-o", "remount,size=\(bytes)", mountPoint.path])
        guard result.status == 0 else { throw TestSetupError(description: "cannot resize \(mountPoint.path): \(result.stderr)") }
    }

    public var freeBytes: Int64 {
        var info = statvfs()
        guard statvfs(mountPoint.path, &info) == 0 else { return -1 }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Unmounts, waiting while it is busy: a child process another test is starting holds copies
    /// of this process's descriptors (a directory being listed, say) until its exec.
    func unmount() async throws {
        var last = ""
        let done = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
            let result = try await offPool { try runProcess("/usr/bin/umount", [mountPoint.path]) }
            last = result.stderr
            return result.status == 0
        }
        guard done else { throw TestSetupError(description: "cannot unmount \(mountPoint.path): \(last)") }
    }
}
