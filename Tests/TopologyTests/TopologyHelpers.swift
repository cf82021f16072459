import Foundation
import OpsDB
import Postgres
import Topology
import TestSupport

let exampleTopologyPath = TestEnvironment.repositoryRoot.appendingPathComponent("etc/topology.example.yaml").path

/// A migrated test database with the example topology applied.
func withExampleTopology(_ body: (TestDatabase, OpsDB) async throws -> Void) async throws {
    try await withTestDatabase { database, connection in
        try await Migrator.bundled().migrate(connection)
        let spec = try TopologyParser.parse(contentsOf: exampleTopologyPath)
        _ = try await TopologySync().apply(spec, to: connection)
        try await body(database, OpsDB(connection))
    }
}

/// A fingerprint of every topology table, to show that a failed apply changed nothing.
func topologySnapshot(_ db: OpsDB) async throws -> String {
    var parts: [String] = []
    for table in ["site", "data_location", "disk_data_location", "s3_data_location", "tape_data_location", "submission_profile"] {
        let digest: String? = try await db.connection.query("""
            SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), 'empty') AS digest FROM \(identifier: table) t
            """).first?["digest"]
        parts.append("\(table)=\(digest ?? "?")")
    }
    return parts.joined(separator: ";")
}

/// Example topology text with `old` replaced by `new` (the replacement must apply exactly once).
func exampleTopology(replacing old: String, with new: String) throws -> String {
    let text = try String(contentsOfFile: exampleTopologyPath, encoding: .utf8)
    precondition(text.components(separatedBy: old).count == 2, "'\(old)' must occur exactly once in the example topology")
    return text.replacingOccurrences(of: old, with: new)
}
