import Archiving
import Crypto
import Foundation
import Testing
import TestSupport
@testable import Storage

func scratch(_ label: String) throws -> URL {
    try testScratchDirectory(label)
}

/// A file of pseudo-random bytes; returns its path and SHA-256.
func randomFile(_ url: URL, size: Int) throws -> (path: String, sha256: String) {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: size)
    for index in stride(from: 0, to: size, by: 8) {
        var word = generator.next()
        withUnsafeBytes(of: &word) { raw in
            for offset in 0..<min(8, size - index) { bytes[index + offset] = raw[offset] }
        }
    }
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(bytes).write(to: url)
    return (url.path, try FileChecksum.sha256(of: url.path).sha256)
}

func partials(in directory: URL) -> [String] {
    (FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".ccat-partial") }
}

let never: ShouldStop = { false }
