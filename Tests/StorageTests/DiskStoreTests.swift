import Archiving
import Crypto
import Foundation
import Testing
import TestSupport
@testable import Storage

@Suite("Disk storage: verified copies that stay under the root")
struct DiskStoreTests {
    @Test func uploadDownloadRoundTripVerifiesAndIsAtomic() throws {
        let dir = try scratch("disk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = DiskStore(name: "lta", root: dir.appendingPathComponent("root").path)
        try FileManager.default.createDirectory(atPath: store.root, withIntermediateDirectories: true)
        let source = try randomFile(dir.appendingPathComponent("in/a.tar"), size: (3 << 20) + 11)
        let key = "2026/obs 1/ümlaut's \"pkg\".tar"

        let stored = try store.upload(file: source.path, to: key, sha256: source.sha256, shouldStop: never)
        #expect(stored == StoredObject(key: key, size: (3 << 20) + 11, sha256: source.sha256))
        #expect(try store.holds(key, size: stored.size, sha256: source.sha256))
        #expect(try !store.holds(key, size: stored.size, sha256: String(repeating: "0", count: 64)))
        #expect(try store.head(key)?.size == stored.size)
        #expect(try store.list(prefix: "2026/").map(\.key) == [key])

        let back = dir.appendingPathComponent("out/b.tar").path
        try store.download(key, to: back, expectedSize: stored.size, expectedSHA256: source.sha256, shouldStop: never)
        #expect(try FileChecksum.sha256(of: back).sha256 == source.sha256)

        try store.delete(key)
        try store.delete(key)  // already gone: fine
        #expect(try store.head(key) == nil)
        #expect(partials(in: dir).isEmpty)
        let probe = store.probe()
        #expect(probe.reachable && (probe.totalBytes ?? 0) > 0 && (probe.freeBytes ?? -1) >= 0)
        #expect(!DiskStore(name: "gone", root: dir.appendingPathComponent("missing").path).probe().reachable)
    }

    /// What fixity and audits need: read-back, a walk that also sees temporary files (which
    /// `list` hides), a move aside that creates its directories, and a missing root as an error
    /// rather than an empty listing.
    @Test func readBackWalkAndMoveAside() throws {
        let dir = try scratch("disk-integrity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = DiskStore(name: "lta", root: dir.appendingPathComponent("root").path)
        let source = try randomFile(dir.appendingPathComponent("in/a.tar"), size: 5000)
        try store.upload(file: source.path, to: "obs 1/a.tar", sha256: source.sha256, shouldStop: never)
        FileManager.default.createFile(atPath: store.root + "/obs 1/.b.tar.ccat-partial", contents: Data("x".utf8))
        #expect(try store.readBack("obs 1/a.tar", shouldStop: never) == StoredObject(key: "obs 1/a.tar", size: 5000, sha256: source.sha256))
        #expect(try store.readBack("obs 1/none.tar", shouldStop: never) == nil)
        var pages: [[StoredObject]] = []
        try store.listPages(prefix: "", pageSize: 1) { pages.append($0) }
        #expect(pages.count == 2 && Set(pages.flatMap { $0.map(\.key) }) == ["obs 1/a.tar", "obs 1/.b.tar.ccat-partial"])
        #expect(pages.allSatisfy { $0[0].modified != nil })
        #expect(try store.list(prefix: "").map(\.key) == ["obs 1/a.tar"])

        try store.move("obs 1/a.tar", to: ".ccat-quarantine/copy-1/obs 1/a.tar")
        #expect(try store.head("obs 1/a.tar") == nil)
        #expect(try store.readBack(".ccat-quarantine/copy-1/obs 1/a.tar", shouldStop: never)?.sha256 == source.sha256)
        let gone = #expect(throws: StorageError.self) { try store.move("obs 1/a.tar", to: "elsewhere") }
        #expect(gone?.kind == .notFound)
        let escape = #expect(throws: StorageError.self) { try store.move(".ccat-quarantine/copy-1/obs 1/a.tar", to: "../outside") }
        #expect(escape?.kind == .invalidPath)

        let unmounted = DiskStore(name: "lta", root: dir.appendingPathComponent("not-mounted").path)
        let missing = #expect(throws: StorageError.self) { try unmounted.listPages(prefix: "", pageSize: 10) { _ in } }
        #expect(missing?.kind == .notFound && missing?.description.contains("unmounted") == true)
    }

    @Test func damagedSourceOrCopyIsNeverStored() throws {
        let dir = try scratch("disk-damage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = DiskStore(name: "buffer", root: dir.appendingPathComponent("root").path)
        try FileManager.default.createDirectory(atPath: store.root, withIntermediateDirectories: true)
        let source = try randomFile(dir.appendingPathComponent("a.tar"), size: 100_000)
        try flipByte(source.path, at: 5_000)
        let error = #expect(throws: StorageError.self) {
            try store.upload(file: source.path, to: "a.tar", sha256: source.sha256, shouldStop: never)
        }
        #expect(error?.kind == .checksumMismatch)
        #expect(try store.head("a.tar") == nil)

        // A download with the wrong expectation leaves nothing behind either.
        let good = try randomFile(dir.appendingPathComponent("root/b.tar"), size: 5_000)
        let target = dir.appendingPathComponent("fetched.tar").path
        let mismatch = #expect(throws: StorageError.self) {
            try store.download("b.tar", to: target, expectedSize: 5_000, expectedSHA256: String(repeating: "a", count: 64), shouldStop: never)
        }
        #expect(mismatch?.kind == .checksumMismatch)
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try FileChecksum.sha256(of: good.path).sha256 == good.sha256)
        #expect(partials(in: dir).isEmpty)
    }

    @Test func pathsThatLeaveTheRootAreRefused() throws {
        let dir = try scratch("disk-escape")
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = dir.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let outside = dir.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link").path, withDestinationPath: outside.path)
        let store = DiskStore(name: "buffer", root: root.path)
        let source = try randomFile(dir.appendingPathComponent("a.tar"), size: 10)
        for key in ["../x.tar", "/etc/x.tar", "a/../../x.tar", "a//b", "./a", "link/x.tar", ""] {
            let error = #expect(throws: StorageError.self, "key \(key.debugDescription)") {
                try store.upload(file: source.path, to: key, sha256: source.sha256, shouldStop: never)
            }
            #expect(error?.kind == .invalidPath, "key \(key.debugDescription)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.tar").path))
    }

    /// No link below a root is followed on either side of a copy, not even one that points back
    /// inside the root: a directory swapped for a link could otherwise carry a copy, a read or a
    /// deletion anywhere.
    @Test func noLinkBelowTheRootIsFollowed() throws {
        let dir = try scratch("disk-links")
        defer { try? FileManager.default.removeItem(at: dir) }
        let manager = FileManager.default
        let root = dir.appendingPathComponent("root"), otherRoot = dir.appendingPathComponent("other")
        let kept = try randomFile(root.appendingPathComponent("real/a.tar"), size: 1_000)
        let secret = try randomFile(dir.appendingPathComponent("outside/secret.tar"), size: 1_000)
        try manager.createDirectory(at: otherRoot, withIntermediateDirectories: true)
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("inside").path, withDestinationPath: "real")
        try manager.createSymbolicLink(atPath: otherRoot.appendingPathComponent("obs").path,
                                       withDestinationPath: dir.appendingPathComponent("outside").path)
        let store = DiskStore(name: "buffer", root: root.path), other = DiskStore(name: "source", root: otherRoot.path)

        func refused(_ what: String, _ body: () throws -> Void) {
            let error = #expect(throws: StorageError.self, "\(what)") { try body() }
            #expect(error?.kind == .invalidPath, "\(what): \(String(describing: error))")
            #expect(error?.problem.contains("symbolic link") == true, "\(what)")
        }
        refused("holds") { _ = try store.holds("inside/a.tar", size: 1_000, sha256: kept.sha256) }
        refused("download") {
            try store.download("inside/a.tar", to: dir.appendingPathComponent("back.tar").path, expectedSize: nil, expectedSHA256: nil, shouldStop: never)
        }
        refused("upload from a linked source") {
            try store.upload(file: other.rooted("obs/secret.tar"), to: "copied.tar", sha256: secret.sha256, shouldStop: never)
        }
        refused("upload into a linked directory") {
            try store.upload(file: kept.path, to: "inside/new.tar", sha256: kept.sha256, shouldStop: never)
        }
        refused("delete") { try store.delete("inside/a.tar") }
        #expect(try store.head("copied.tar") == nil)
        #expect(!manager.fileExists(atPath: root.appendingPathComponent("real/new.tar").path))
        #expect(try FileChecksum.sha256(of: kept.path).sha256 == kept.sha256)
        #expect(try FileChecksum.sha256(of: secret.path).sha256 == secret.sha256)

        let unmounted = DiskStore(name: "archive", root: dir.appendingPathComponent("mnt/archive").path)
        let missing = #expect(throws: StorageError.self) {
            try unmounted.download("a.tar", to: dir.appendingPathComponent("back.tar").path, expectedSize: nil, expectedSHA256: nil, shouldStop: never)
        }
        #expect(missing?.kind == .notFound)
    }

    /// A full file system is `noSpace` (the work waits for space), both when it is seen before
    /// writing and when the disk fills during a copy; nothing is left behind.
    @Test(.enabled(if: SmallFileSystem.available)) func aFullFileSystemIsNoSpaceAndLeavesNothing() async throws {
        let dir = try scratch("disk-full")
        let source = try randomFile(dir.appendingPathComponent("a.tar"), size: 3 << 20)
        try await SmallFileSystem.with(bytes: 1 << 20) { fileSystem in
            let store = DiskStore(name: "buffer", root: fileSystem.mountPoint.path)
            try store.requireSpace(512 << 10, for: "a small bundle")
            let early = #expect(throws: StorageError.self) { try store.requireSpace(3 << 20, for: "bundle b-1") }
            #expect(early?.kind == .noSpace)
            #expect(early?.problem.contains("bundle b-1 needs 3145728 bytes, but \(fileSystem.freeBytes) are free") == true, "\(String(describing: early))")

            let late = #expect(throws: StorageError.self) {
                try store.upload(file: source.path, to: "nested/a.tar", sha256: source.sha256, shouldStop: never)
            }
            #expect(late?.kind == .noSpace, "\(String(describing: late))")
            #expect(try store.head("nested/a.tar") == nil)
            #expect(partials(in: fileSystem.mountPoint).isEmpty)
            // The discarded copy's space comes back. Not always at once: a child process that
            // another test is starting at that moment holds a copy of this process's descriptors
            // until its exec (O_CLOEXEC closes them only then), so the space is freed a moment
            // later. A descriptor leaked for good would never give it back.
            #expect(try await eventually(within: .seconds(60)) { fileSystem.freeBytes >= 1 << 20 - 64 << 10 },
                    "\(fileSystem.freeBytes) bytes free")
        }
    }

    @Test func stopRequestAbandonsTheCopyWithoutLeftovers() throws {
        let dir = try scratch("disk-stop")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = DiskStore(name: "buffer", root: dir.appendingPathComponent("root").path)
        try FileManager.default.createDirectory(atPath: store.root, withIntermediateDirectories: true)
        let source = try randomFile(dir.appendingPathComponent("a.tar"), size: 1 << 20)
        #expect(throws: StopRequestedDuringCopy.self) {
            try store.upload(file: source.path, to: "a.tar", sha256: source.sha256, shouldStop: { true })
        }
        #expect(try store.head("a.tar") == nil)
        #expect(partials(in: dir).isEmpty)
    }
}
