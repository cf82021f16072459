import Archiving
import Foundation
import OpsDB

#if canImport(Glibc)
import Glibc
#endif

/// The two files every staged directory carries, rewritten as each job of its request finishes:
/// `SHA256SUMS`, every staged file with its registered SHA-256 (`sha256sum -c SHA256SUMS` checks
/// the directory offline), and `PROVENANCE.json`: the request, its packages, the archive copy
/// each was read from, and when. Both are written as the directory's owner, atomically.
enum StagedDirectoryFiles {
    static let checksums = "SHA256SUMS"
    static let provenance = "PROVENANCE.json"

    /// Writes both files into `target` (the directory of `jobID`); returns how many files they list.
    static func write(jobID: Int64, into target: RootedPath, owner: FileOwner?, _ db: OpsDB) async throws -> Int {
        try await db.withStagedDirectoryLock(jobID: jobID) { db in
            let contents = try await db.stagedDirectoryContents(jobID: jobID)
            let sums = Data(contents.files.map { line(path: $0.path, sha256: $0.sha256) }.joined().utf8)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.dateEncodingStrategy = .iso8601
            let provenanceData = try encoder.encode(contents.provenance) + Data("\n".utf8)
            try asFileOwner(owner) {
                try replace(target.appending(checksums), with: sums)
                try replace(target.appending(provenance), with: provenanceData)
            }
            return contents.files.count
        }
    }

    /// One line as GNU `sha256sum` writes it: a name with a backslash or a newline is escaped, and
    /// the line then starts with a backslash.
    static func line(path: String, sha256: String) -> String {
        guard path.contains("\\") || path.contains("\n") else { return "\(sha256)  \(path)\n" }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        return "\\\(sha256)  \(escaped)\n"
    }

    private static func replace(_ file: RootedPath, with data: Data) throws {
        let output = try AtomicFile(creating: file, mode: 0o644)
        do {
            try data.withUnsafeBytes { try output.write($0) }
            try output.commit()
        } catch {
            output.discard()
            throw error
        }
    }
}
