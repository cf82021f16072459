import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// The deployment guide quotes `ccat db grants`; what it quotes is what PostgreSQL enforces.
@Suite("Role grants", .enabled(if: TestEnvironment.runPostgresTests))
struct RoleGrantsTests {
    @Test func deploymentGuideQuotesTheGrantsOfTheCurrentSchema() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let grants = try await RoleGrants.load(connection)
            #expect(grants.map(\.role) == RoleGrants.groupRoles)
            // What least privilege rests on, read back from the server.
            let runner = try #require(grants.first { $0.role == "ccat_runner" })
            #expect(!runner.tables.contains { $0.privileges.contains("DELETE") }, "a runner may delete rows")
            #expect(runner.tables.first { $0.table == "raw_data_file" }?.privileges == ["SELECT"])
            #expect(runner.tables.contains { $0.table == "operation" && $0.privileges == ["UPDATE"] && !$0.columns.isEmpty })
            #expect(!runner.tables.contains { $0.table == "staging_request" && ($0.columns.isEmpty || $0.columns.contains("credential")) && $0.privileges.contains("SELECT") })
            #expect(runner.policies.contains { $0.table == "operation" && $0.command == "UPDATE" })
            let instrument = try #require(grants.first { $0.role == "ccat_instrument" })
            #expect(instrument.tables.allSatisfy { $0.privileges.allSatisfy { ["SELECT", "INSERT", "UPDATE"].contains($0) } })

            let guide = try String(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("docs/deployment.md"), encoding: .utf8)
            let quoted = try #require(Self.block(in: guide), "docs/deployment.md has no 'ccat db grants' block")
            #expect(quoted == grants.render(), "docs/deployment.md quotes other grants than the schema has: run 'ccat db grants' on a migrated database and paste its output between the markers")
        }
    }

    /// The fenced text between the guide's `ccat db grants` markers.
    static func block(in text: String) -> String? {
        guard let begin = text.range(of: "<!-- ccat db grants: begin -->\n```text\n"),
              let end = text.range(of: "\n```\n<!-- ccat db grants: end -->", range: begin.upperBound..<text.endIndex) else { return nil }
        return String(text[begin.upperBound..<end.lowerBound])
    }
}
