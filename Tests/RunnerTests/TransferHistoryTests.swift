import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// Every attempt of work that moves bytes between locations is kept with its link, method, bytes,
/// seconds and outcome, and folded into daily totals per link once it is old.
@Suite("Throughput history of transfers")
struct TransferHistoryTests {
    @Test func attemptsAreRecordedPerLinkAndFoldedIntoDailyTotals() async throws {
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (bundle, transfer) = try await pipeline.packageBundleAndSend()
            let telescope = try await pipeline.location("ccat", "buffer"), cologne = try await pipeline.location("cologne", "buffer")
            // The first attempt finds the bundle gone at the origin and fails; the second one sends it.
            let bundlePath = pipeline.path("buffer/\(bundle.relativePath)")
            try FileManager.default.moveItem(atPath: bundlePath, toPath: bundlePath + ".away")
            let operation = try await pipeline.operation(.dataTransfer, at: telescope, .dataTransfer(transfer.id))
            let failed = try await pipeline.exec(operation)
            #expect(failed.after.state != .succeeded && failed.after.errorClass != nil)
            try FileManager.default.moveItem(atPath: bundlePath + ".away", toPath: bundlePath)
            let sent = try await pipeline.exec(operation)
            #expect(sent.status == 0 && sent.after.state == .succeeded, "\(sent.stderr)")

            // Only the two transfers were recorded (packaging and bundling move nothing between locations).
            let rows = try await db.connection.query("""
                SELECT operation_type::text AS type, origin_location_id, destination_location_id, method, bytes, seconds, succeeded, error_class
                FROM transfer_attempt ORDER BY id
                """)
            #expect(rows.count == 2)
            let size = try #require(bundle.sizeBytes)
            if rows.count == 2 {
                for row in rows {
                    #expect(try row["type"] as String == "DATA_TRANSFER" && row["origin_location_id"] as Int64 == telescope.id
                            && row["destination_location_id"] as Int64 == cologne.id && row["method"] as String == "COPY")
                }
                #expect(try !(rows[0]["succeeded"] as Bool) && rows[0]["error_class"] as String? != nil && rows[0]["bytes"] as Int64 == 0)
                #expect(try rows[1]["succeeded"] as Bool && rows[1]["bytes"] as Int64 == size && rows[1]["seconds"] as Double > 0)
            }
            let link = LinkThroughput(operationType: .dataTransfer, origin: "ccat:buffer", destination: "cologne:buffer", attempts: 2,
                                      failures: 1, bytes: size, seconds: 0)
            func withoutSeconds(_ links: [LinkThroughput]) -> [LinkThroughput] { links.map { var link = $0; link.seconds = 0; return link } }
            #expect(withoutSeconds(try await db.linkThroughput(since: Date().addingTimeInterval(-3600))) == [link])
            let status = try await runExecutable("ccat", ["status"], environment: pipeline.environment)
            #expect(status.stdout.contains("ccat:buffer -> cologne:buffer"), "\(status.stdout)")

            // Forty days later the attempts are daily totals: the same sums, kept for any period that covers them.
            try await db.connection.execute("UPDATE transfer_attempt SET finished_at = finished_at - interval '40 days'")
            #expect(try await db.foldTransferAttempts(olderThanDays: 30) == 2)
            #expect(try await db.connection.query("SELECT count(*)::int AS n FROM transfer_attempt")[0]["n"] as Int == 0)
            #expect(withoutSeconds(try await db.linkThroughput(since: Date().addingTimeInterval(-50 * 86_400))) == [link])
            let shown = try await runExecutable("ccat", ["throughput", "--since", "7w", "--json"], environment: pipeline.environment)
            #expect(shown.status == 0, "\(shown.stderr)")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            #expect(withoutSeconds(try decoder.decode([LinkThroughput].self, from: Data(shown.stdout.utf8))) == [link], "\(shown.stdout)")
            let recent = try await runExecutable("ccat", ["throughput"], environment: pipeline.environment)
            #expect(recent.status == 0 && recent.stdout.contains("nothing moved in the last 24h"), "\(recent.stdout)")
            let refused = try await runExecutable("ccat", ["throughput", "--since", "lately"], environment: pipeline.environment)
            #expect(refused.status != 0 && refused.stderr.contains("not a duration"))
            #expect(try await db.linkThroughput(since: Date().addingTimeInterval(-3600)).isEmpty)
            #expect(try await db.foldTransferAttempts(olderThanDays: 30) == 0)
        }
    }
}
