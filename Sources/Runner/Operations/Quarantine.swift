import Foundation
import OpsDB
import Storage

// What fixity passes, audits and repairs share: the safety brake, and where damaged objects go.

/// The safety brake's words, the same for fixity and audit.
enum Brake {
    struct Found: Error {}

    /// Whether the store holds no object at all (the walk stops at the first one).
    static func isEmpty(_ store: any ObjectStore) throws -> Bool {
        do {
            try store.listPages(prefix: "", pageSize: 1) { page in if !page.isEmpty { throw Found() } }
            return true
        } catch is Found {
            return false
        }
    }

    static func message(bad: Int64, of copies: Int64, limit: Int64, runID: Int64, what: String) -> String {
        "SUSPECT: \(bad) of \(copies) catalogued copies look lost or corrupted (\(what)), more than the \(limit) one pass may find: "
            + "the location is suspected as a whole (an unmounted file system, a wrong bucket or prefix, expired credentials?), "
            + "so nothing was marked or repaired. Look at the storage, then run 'ccat audit confirm \(runID)' if the findings are real."
    }
}

/// Damaged objects are never deleted when found: they are moved under the location's
/// `.ccat-quarantine/`, and removed only once a repair has put verified bytes in their place.
enum Quarantine {
    static let prefix = ".ccat-quarantine/"

    static func key(for copy: PhysicalCopy) -> String {
        "\(prefix)copy-\(copy.id)-\(Int(Date().timeIntervalSince1970))/\(copy.relativePath)"
    }

    /// Everything kept aside for a copy, recorded or not (an attempt killed between moving the
    /// object and recording where it went leaves one that no finding names).
    static func objects(of copy: PhysicalCopy, in store: any ObjectStore) throws -> [String] {
        var found: [String] = []
        try store.listPages(prefix: "\(prefix)copy-\(copy.id)-", pageSize: 100) { page in
            found += page.map(\.key).filter { $0.hasSuffix("/" + copy.relativePath) }
        }
        return found
    }

    /// Moves the copy's object aside; returns its new key.
    static func moveAside(_ copy: PhysicalCopy, in store: any ObjectStore, log: OperationLog) async throws -> String {
        let aside = key(for: copy)
        try await runBlocking { try store.move(copy.relativePath, to: aside) }
        log.write("moved \(copy.relativePath) aside to \(aside)")
        return aside
    }
}
