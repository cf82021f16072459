import Foundation
import Testing
import TestSupport
@testable import Archiving

#if canImport(Glibc)
import Glibc
#endif

/// A root with a real directory, a link below it that points back inside (`inside` -> `real`),
/// one that points out (`out` -> a directory beside the root), and a secret outside.
struct LinkedRoot {
    let work: URL
    let root: URL
    let outside: URL

    init(_ label: String) throws {
        work = try testScratchDirectory(label)
        root = work.appendingPathComponent("root")
        outside = work.appendingPathComponent("outside")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("real/deeper"), withIntermediateDirectories: true)
        try manager.createDirectory(at: outside.appendingPathComponent("deeper"), withIntermediateDirectories: true)
        try Data("inside".utf8).write(to: root.appendingPathComponent("real/deeper/file"))
        try Data("secret".utf8).write(to: outside.appendingPathComponent("deeper/file"))
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("inside").path, withDestinationPath: "real")
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("out").path, withDestinationPath: outside.path)
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("real/filelink").path, withDestinationPath: "deeper/file")
    }

    func at(_ relative: String) -> RootedPath { RootedPath(root: root.path, relative: relative) }

    func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }
}

@Suite("Paths below a root: no link is ever followed")
struct RootedPathTests {
    @Test func readingThroughALinkAnywhereBelowTheRootIsRefused() throws {
        let tree = try LinkedRoot("rooted-read")
        let (fd, size) = try tree.at("real/deeper/file").openForReading()
        close(fd)
        #expect(size == 6)
        for relative in ["inside/deeper/file", "out/deeper/file", "real/filelink"] {
            let error = #expect(throws: ArchiveError.self, "\(relative)") { _ = try tree.at(relative).openForReading() }
            #expect(error?.kind == .symbolicLink, "\(relative)")
            #expect(error?.problem.contains("symbolic link") == true)
            #expect(throws: ArchiveError.self) { _ = try FileChecksum.sha256(of: tree.at(relative)) }
        }
        // '..' cannot climb out either, and a FIFO does not block the open.
        #expect((#expect(throws: ArchiveError.self) { _ = try tree.at("real/../../outside/deeper/file").openForReading() })?.kind == .unsafeMember)
        #expect(mkfifo(tree.root.appendingPathComponent("real/fifo").path, 0o600) == 0)
        #expect((#expect(throws: ArchiveError.self) { _ = try tree.at("real/fifo").openForReading() })?.problem == "not a regular file")
        // The root itself is the administrator's and may be a link.
        let linkedRoot = tree.work.appendingPathComponent("root-link")
        try FileManager.default.createSymbolicLink(atPath: linkedRoot.path, withDestinationPath: tree.root.path)
        close(try RootedPath(root: linkedRoot.path, relative: "real/deeper/file").openForReading().fd)
        #expect(try RootedPath(root: tree.work.appendingPathComponent("unmounted").path, relative: "a").status() == nil)
    }

    @Test func writingThroughALinkIsRefusedAndCreatesNothing() throws {
        let tree = try LinkedRoot("rooted-write")
        for relative in ["out/new/file", "out/deeper/file", "inside/new"] {
            let error = #expect(throws: ArchiveError.self, "\(relative)") { _ = try AtomicFile(creating: tree.at(relative)) }
            #expect(error?.kind == .symbolicLink, "\(relative)")
        }
        #expect(!tree.exists(tree.outside.appendingPathComponent("new")))
        #expect(try String(contentsOf: tree.outside.appendingPathComponent("deeper/file"), encoding: .utf8) == "secret")
        #expect(!tree.exists(tree.root.appendingPathComponent("real/new")))

        // Missing directories are made; the file appears only when committed.
        let file = try AtomicFile(creating: tree.at("made/on/the/way"))
        try Data("x".utf8).withUnsafeBytes { try file.write($0) }
        #expect(try file.readBack().size == 1)
        #expect(!tree.exists(tree.root.appendingPathComponent("made/on/the/way")))
        try file.commit()
        #expect(try String(contentsOf: tree.root.appendingPathComponent("made/on/the/way"), encoding: .utf8) == "x")
    }

    @Test func removingATreeRemovesLinksNotWhatTheyPointAt() throws {
        let tree = try LinkedRoot("rooted-remove")
        // Through a link on the way: refused, nothing removed at either end.
        #expect((#expect(throws: ArchiveError.self) { try tree.at("out/deeper").removeTree() })?.kind == .symbolicLink)
        #expect((#expect(throws: ArchiveError.self) { try tree.at("inside/deeper/file").unlinkFile() })?.kind == .symbolicLink)
        #expect(tree.exists(tree.outside.appendingPathComponent("deeper/file")))
        #expect(tree.exists(tree.root.appendingPathComponent("real/deeper/file")))

        // A tree holding links to the outside: the links go, their targets stay.
        try FileManager.default.createSymbolicLink(atPath: tree.root.appendingPathComponent("real/deeper/escape").path,
                                                   withDestinationPath: tree.outside.path)
        try tree.at("real").removeTree()
        try tree.at("real").removeTree()  // already gone: fine
        try tree.at("never/there").unlinkFile()
        #expect(!tree.exists(tree.root.appendingPathComponent("real")))
        #expect(try String(contentsOf: tree.outside.appendingPathComponent("deeper/file"), encoding: .utf8) == "secret")
    }

    @Test func extractionNeverWritesThroughALinkInTheTarget() throws {
        let tree = try LinkedRoot("rooted-extract")
        let source = tree.work.appendingPathComponent("member")
        try Data("payload".utf8).write(to: source)
        let archive = tree.work.appendingPathComponent("a.tar").path
        let summary = try TarArchive.create(at: archive, inputs: [ArchiveInput(source: source.path, memberPath: "deeper/file")])
        // The target directory is reached through a link ('out'), or holds one where a member's
        // directory goes ('real' -> after replacing 'real/deeper' with a link out).
        #expect(throws: ArchiveError.self) { _ = try TarArchive.extract(RootedPath(file: archive), into: tree.at("out"), expected: summary.members) }
        try FileManager.default.removeItem(at: tree.root.appendingPathComponent("real/deeper"))
        try FileManager.default.createSymbolicLink(atPath: tree.root.appendingPathComponent("real/deeper").path,
                                                   withDestinationPath: tree.outside.appendingPathComponent("deeper").path)
        let error = #expect(throws: ArchiveError.self) {
            _ = try TarArchive.extract(RootedPath(file: archive), into: tree.at("real"), expected: summary.members)
        }
        #expect(error?.kind == .unsafeMember)
        #expect(try String(contentsOf: tree.outside.appendingPathComponent("deeper/file"), encoding: .utf8) == "secret")
        // Into a plain directory it works.
        let done = try TarArchive.extract(RootedPath(file: archive), into: tree.at("fresh/target"), expected: summary.members)
        #expect(done.members == summary.members)
        #expect(try String(contentsOf: tree.root.appendingPathComponent("fresh/target/deeper/file"), encoding: .utf8) == "payload")
    }
}
