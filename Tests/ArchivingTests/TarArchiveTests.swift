import Foundation
import Testing
import TestSupport
@testable import Archiving

/// Names that must survive packaging and unpacking unchanged.
let awkwardNames = ["plain.dat", "with space.fits", "quote's \"double\".txt", "new\nline.bin", "ümlaut-日本.dat", "sub dir/nested/$(echo x);`y`.raw"]

func scratch(_ label: String) throws -> URL {
    try testScratchDirectory(label)
}

/// Files of assorted sizes (empty, small, several MiB of pseudo-random bytes) under `directory`.
func makeInputs(in directory: URL) throws -> [ArchiveInput] {
    var generator = SystemRandomNumberGenerator()
    return try awkwardNames.enumerated().map { index, name in
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let size = [0, 17, 4096, (3 << 20) + 5, 1, 65_537][index]
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: url)
        return ArchiveInput(source: url.path, memberPath: name)
    }
}

func sha256sum(_ path: String) throws -> String {
    // sha256sum prefixes the line with a backslash when it escapes the file name (newlines).
    let result = try runProcess("/usr/bin/sha256sum", ["-b", path])
    return String(result.stdout.drop { $0 == "\\" }.prefix(64))
}

func leftovers(in directory: URL) -> [String] {
    (FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".ccat-partial") }
}

@Suite("Tar archives: one pass, checksums, GNU tar compatibility, safe extraction")
struct TarArchiveTests {
    @Test func roundTripAgreesWithGNUTarAndSha256sum() throws {
        let work = try scratch("tar")
        let inputs = try makeInputs(in: work.appendingPathComponent("in"))
        let archive = work.appendingPathComponent("out/package.tar").path
        let summary = try TarArchive.create(at: archive, inputs: inputs)
        #expect(summary.members.map(\.path) == awkwardNames)
        #expect(summary.sha256 == (try sha256sum(archive)))
        #expect(summary.size == Int64(try FileManager.default.attributesOfItem(atPath: archive)[.size] as! UInt64))
        for (input, member) in zip(inputs, summary.members) {
            #expect(member.sha256 == (try sha256sum(input.source.path)), "\(member.path)")
        }
        #expect(leftovers(in: work).isEmpty)

        // GNU tar extracts the same bytes.
        let gnu = work.appendingPathComponent("gnu")
        try FileManager.default.createDirectory(at: gnu, withIntermediateDirectories: true)
        let untar = try runProcess("/usr/bin/tar", ["-xf", archive, "-C", gnu.path])
        #expect(untar.status == 0, "\(untar.stderr)")
        for member in summary.members {
            #expect(try sha256sum(gnu.appendingPathComponent(member.path).path) == member.sha256, "\(member.path)")
        }

        // Our reader extracts and verifies against the manifest.
        let ours = work.appendingPathComponent("ours")
        let extracted = try TarArchive.extract(archive, into: ours.path, expected: summary.members)
        #expect(extracted == summary)
        for member in summary.members {
            #expect(FileManager.default.contentsEqual(atPath: ours.appendingPathComponent(member.path).path,
                                                      andPath: gnu.appendingPathComponent(member.path).path))
        }
        #expect(leftovers(in: ours).isEmpty)
    }

    @Test func readsWhatGNUTarWrites() throws {
        let work = try scratch("gnu-tar")
        let inputs = try makeInputs(in: work.appendingPathComponent("in"))
        let archive = work.appendingPathComponent("gnu.tar").path
        let result = try runProcess("/usr/bin/tar", ["--format=pax", "-cf", archive, "-C", work.appendingPathComponent("in").path] + awkwardNames)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try TarArchive.scan(archive)
        #expect(summary.sha256 == (try sha256sum(archive)))
        #expect(summary.members.map(\.path) == awkwardNames)
        for (input, member) in zip(inputs, summary.members) {
            #expect(member.sha256 == (try sha256sum(input.source.path)))
        }
    }

    @Test func wrongRegisteredChecksumStopsPackagingAndLeavesNothing() throws {
        let work = try scratch("tar-mismatch")
        var inputs = try makeInputs(in: work.appendingPathComponent("in"))
        inputs[2].expectedSHA256 = String(repeating: "0", count: 64)
        let archive = work.appendingPathComponent("out/package.tar").path
        let error = #expect(throws: ArchiveError.self) { try TarArchive.create(at: archive, inputs: inputs) }
        #expect(error?.kind == .checksumMismatch)
        #expect(error?.path == inputs[2].source.path)
        #expect(!FileManager.default.fileExists(atPath: archive))
        #expect(leftovers(in: work).isEmpty)
    }

    @Test func flippedByteIsDetectedAndNothingIsKept() throws {
        let work = try scratch("tar-flip")
        let inputs = try makeInputs(in: work.appendingPathComponent("in"))
        let archive = work.appendingPathComponent("package.tar").path
        let summary = try TarArchive.create(at: archive, inputs: inputs)
        // Flip one byte in the middle of the 3 MiB member's data.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: archive))
        let offset = UInt64(summary.size / 2)
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data([byte ^ 0x01]))
        try handle.close()

        #expect(try TarArchive.scan(archive).sha256 != summary.sha256)
        let target = work.appendingPathComponent("out")
        let error = #expect(throws: ArchiveError.self) { try TarArchive.extract(archive, into: target.path, expected: summary.members) }
        #expect(error?.kind == .checksumMismatch)
        #expect(error?.member == awkwardNames[3])
        #expect(!FileManager.default.fileExists(atPath: target.appendingPathComponent(awkwardNames[3]).path))
        #expect(leftovers(in: target).isEmpty)
    }

    /// Archives built with Python's tarfile, each with one hostile member after a harmless one.
    @Test(arguments: [
        ("absolute", "t.addfile(info('/tmp/ccat-escape-SENTINEL'), io.BytesIO(b'x'))"),
        ("dotdot", "t.addfile(info('../ccat-escape-SENTINEL'), io.BytesIO(b'x'))"),
        ("nested-dotdot", "t.addfile(info('a/../../ccat-escape-SENTINEL'), io.BytesIO(b'x'))"),
        ("symlink", "i = info('link'); i.type = tarfile.SYMTYPE; i.linkname = '/tmp'; i.size = 0; t.addfile(i)"),
        ("hardlink", "i = info('hard'); i.type = tarfile.LNKTYPE; i.linkname = 'ok.txt'; i.size = 0; t.addfile(i)"),
        ("device", "i = info('dev'); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; i.size = 0; t.addfile(i)"),
        ("fifo", "i = info('fifo'); i.type = tarfile.FIFOTYPE; i.size = 0; t.addfile(i)"),
    ])
    func hostileMembersAreRefused(_ name: String, _ statement: String) throws {
        let work = try scratch("tar-hostile")
        let sentinel = "ccat-escape-\(UUID().uuidString)"
        let archive = work.appendingPathComponent("\(name).tar").path
        let script = """
            import io, sys, tarfile
            def info(n):
                i = tarfile.TarInfo(n); i.size = 1; return i
            with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
                t.addfile(info('ok.txt'), io.BytesIO(b'y'))
                \(statement.replacingOccurrences(of: "SENTINEL", with: sentinel))
            """
        let made = try runProcess("/usr/bin/python3", ["-c", script, archive])
        #expect(made.status == 0, "\(made.stderr)")
        let target = work.appendingPathComponent("target/inner")
        let error = #expect(throws: ArchiveError.self) { try TarArchive.extract(archive, into: target.path) }
        #expect(error?.kind == .unsafeMember, "\(String(describing: error))")
        #expect(error?.description.contains(archive) == true)
        // Nothing outside the target, and nothing of the hostile member inside it.
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(sentinel)"))
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("target/\(sentinel)").path))
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent(sentinel).path))
        let inside = (try? FileManager.default.contentsOfDirectory(atPath: target.path)) ?? []
        #expect(inside.allSatisfy { $0 == "ok.txt" }, "\(inside)")
    }
}
