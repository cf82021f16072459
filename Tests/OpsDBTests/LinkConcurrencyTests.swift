import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport

/// The dispatcher's side of adaptive concurrency: each transfer job carries one link, and a link
/// at its limit gets no further job until one of its jobs ends; the optimizer's measurement and
/// record of a decision.
@Suite("Concurrent transfer jobs per link", .enabled(if: TestEnvironment.runPostgresTests))
struct LinkConcurrencyTests {
    /// A job on a link leaves transfers for the jobs a raised limit would add: it takes at most the
    /// link's due transfers divided by its maximum (rounded up), however many a job could carry.
    @Test func aJobTakesItsShareOfTheLinksTransfersAtTheLinksMaximum() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let fx = try await Fixture.make(db)
            let origin = try await db.insertLocation(siteID: fx.ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/ccat-buffer"))
            let queue = "ccat_buffer_data_transfer"
            for index in 0..<10 {
                let bundle = try await db.createDataTransferPackage(name: "bundle-\(index)", originLocationID: origin.id,
                                                                   relativePath: "bundles/bundle-\(index).tar", packageIDs: [])
                let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: origin.id, destinationLocationID: fx.buffer.id,
                                                               routeID: nil, method: .rsync)
                _ = try #require(try await db.createOperation(.dataTransfer, queue: queue, locationID: origin.id, target: .dataTransfer(transfer.id)))
            }
            try await db.setLinkBounds(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, bounds: 2...4)
            var sizes: [Int] = []
            while true {
                let taken = try await db.transaction { db in
                    let due = try await db.lockDueTransfers(queue: queue, limit: 100)
                    if !due.isEmpty {
                        _ = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: queue, locationID: origin.id,
                                                        operationType: .dataTransfer, scriptPath: "/tmp/j.sh", stdoutPath: "/tmp/j.out", stderrPath: "/tmp/j.err",
                                                        operationIDs: due.map(\.id))
                    }
                    return due.count
                }
                if taken == 0 { break }
                sizes.append(taken)
                // The optimizer raises the limit to the maximum: every slot gets its share.
                try await connection.execute("UPDATE link_concurrency SET active_limit = 4")
            }
            // 10 due at a maximum of 4: 3, then 7 left: 2, then 5 left: 2, then 3 left: 1.
            #expect(sizes == [3, 2, 2, 1], "\(sizes)")
            // With the batch's own limit below the share, the batch's limit holds.
            try await connection.execute("UPDATE operation SET state = 'pending', batch_job_id = NULL")
            try await connection.execute("DELETE FROM batch_job")
            let capped = try await db.transaction { try await $0.lockDueTransfers(queue: queue, limit: 2) }
            #expect(capped.count == 2)
        }
    }

    @Test func aLinkAtItsLimitWaitsWhileAnotherLinkGoesOn() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let fx = try await Fixture.make(db)
            let us = try await db.insertSite(name: "US", shortName: "us")
            let origin = try await db.insertLocation(siteID: fx.ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/ccat-buffer"))
            let usBuffer = try await db.insertLocation(siteID: us.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/us-buffer"))
            let queue = "ccat_buffer_data_transfer"
            var linkOf: [Int64: String] = [:]
            for (index, destination) in [fx.buffer, fx.buffer, fx.buffer, usBuffer, usBuffer].enumerated() {
                let bundle = try await db.createDataTransferPackage(name: "bundle-\(index)", originLocationID: origin.id,
                                                                   relativePath: "bundles/bundle-\(index).tar", packageIDs: [])
                let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: origin.id, destinationLocationID: destination.id,
                                                               routeID: nil, method: .rsync)
                let operation = try #require(try await db.createOperation(.dataTransfer, queue: queue, locationID: origin.id, target: .dataTransfer(transfer.id)))
                linkOf[operation.id] = destination.id == fx.buffer.id ? "cologne" : "us"
            }
            // Cologne's link may carry one job; the US link keeps the default start (2).
            try await db.setLinkBounds(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, bounds: 1...1)
            func nextJob() async throws -> [Int64] {
                try await db.transaction { db in
                    let due = try await db.lockDueTransfers(queue: queue, limit: 1)
                    guard !due.isEmpty else { return [] }
                    _ = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: queue, locationID: origin.id,
                                                    operationType: .dataTransfer, scriptPath: "/tmp/j.sh", stdoutPath: "/tmp/j.out", stderrPath: "/tmp/j.err",
                                                    operationIDs: due.map(\.id))
                    return due.map(\.id)
                }
            }
            var jobs: [[Int64]] = []
            while true {
                let job = try await nextJob()
                if job.isEmpty { break }
                jobs.append(job)
            }
            #expect(jobs.map { $0.compactMap { linkOf[$0] } } == [["cologne"], ["us"], ["us"]], "\(jobs)")
            // Unpacking at the destination is not a transfer on the link: it takes no slot.
            let unpackTransfer = try #require(try await connection.query("SELECT data_transfer_id FROM operation WHERE id = \(jobs[0][0])").first)["data_transfer_id"] as Int64
            let unpack = try #require(try await db.createOperation(.dataTransferUnpacking, queue: "cologne_buffer_data_transfer_unpacking", locationID: fx.buffer.id,
                                                                   target: .dataTransfer(unpackTransfer)))
            _ = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "cologne_buffer_data_transfer_unpacking",
                                            locationID: fx.buffer.id, operationType: .dataTransferUnpacking, scriptPath: "/tmp/u.sh",
                                            stdoutPath: "/tmp/u.out", stderrPath: "/tmp/u.err", operationIDs: [unpack.id])
            let links = try await db.linkConcurrency()
            let cologne = try #require(links.first { $0.destination == "cologne" })
            #expect(cologne.activeLimit == 1 && cologne.activeJobs == 1 && cologne.waitingOperations == 2 && cologne.configured)
            let usLink = try #require(links.first { $0.destination == "us" })
            #expect(usLink.activeLimit == LinkConcurrency.defaultStart && usLink.activeJobs == 2 && !usLink.configured
                    && LinkConcurrency.defaultBounds == usLink.minActive...usLink.maxActive)

            // Cologne's job ends: its link has room again, for one more job.
            try await connection.execute("UPDATE operation SET state = 'succeeded' WHERE id = \(jobs[0][0])")
            let next = try await nextJob()
            #expect(next.compactMap { linkOf[$0] } == ["cologne"])
            #expect(try await nextJob().isEmpty)

            // The optimizer measures what the link carried since its last decision (runners count
            // it as they send) and the attempts that finished, and records the decision with them.
            let since = try #require(try await connection.query("SELECT now() - interval '10 seconds' AS t").first)["t"] as Date
            for id in jobs[1] + jobs[2] {
                let operation = try #require(try await db.operation(id: id))
                try await db.recordTransferAttempt(operation, succeeded: id == jobs[1][0], bytes: 1_000_000, seconds: 2, errorClass: nil, logPath: nil)
                let transfer = try #require(try await connection.query("SELECT data_transfer_id FROM operation WHERE id = \(id)").first)["data_transfer_id"] as Int64
                try await db.recordLinkBytes(transferID: transfer, bytes: 700_000)
            }
            let counted = try #require(try await db.linkConcurrency().first { $0.destination == "us" })
            #expect(counted.bytesMoved == 1_400_000 && counted.bytesAtDecision == 0)
            let measured = try await db.linkMeasurement(counted, since: since)
            #expect(measured.attempts == 2 && measured.succeeded == 1 && measured.bytes == 1_400_000)
            #expect(measured.seconds >= 10 && measured.seconds < 60)
            try await db.recordLinkDecision(counted, measured: measured, decision: LinkDecision(limit: 1, emaBytesPerSecond: 100_000, reason: "fewer: test"))
            let after = try #require(try await db.linkConcurrency().first { $0.destination == "us" })
            #expect(after.activeLimit == 1 && after.successRate == 0.5 && after.reason == "fewer: test" && after.bytesAtDecision == 1_400_000)
            // Bytes carried with no attempt finished: a measurement, with the link's earlier success rate.
            try await db.recordLinkBytes(transferID: try #require(try await connection.query("SELECT data_transfer_id FROM operation WHERE id = \(jobs[1][0])").first)["data_transfer_id"] as Int64,
                                         bytes: 500_000)
            let later = try await db.linkMeasurement(try #require(try await db.linkConcurrency().first { $0.destination == "us" }), since: Date())
            #expect(later.attempts == 0 && later.bytes == 500_000 && later.successRate == 0.5)
            let history = try await connection.query("SELECT previous_limit, new_limit, attempts FROM link_concurrency_decision")
            #expect(history.count == 1)
            #expect(try history.first?["previous_limit"] == 2 && history.first?["new_limit"] == 1 && history.first?["attempts"] == 2)

            // Bounds from the topology keep the limit inside them; dropping them restores the defaults.
            try await db.setLinkBounds(originSiteID: fx.ccat.id, destinationSiteID: us.id, bounds: 3...5)
            #expect(try await db.linkConcurrency().first { $0.destination == "us" }?.activeLimit == 3)
            try await db.setLinkBounds(originSiteID: fx.ccat.id, destinationSiteID: us.id, bounds: nil)
            let restored = try #require(try await db.linkConcurrency().first { $0.destination == "us" })
            #expect(!restored.configured && restored.minActive...restored.maxActive == LinkConcurrency.defaultBounds && restored.activeLimit == 3)
        }
    }

    /// Bandwidth windows: the cap in force at a time of day in the window's zone (also across
    /// midnight; the lowest of overlapping windows), and a transfer's share of it.
    @Test func theCapInForceIsSharedByTheLinksJobs() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let fx = try await Fixture.make(db)
            let origin = try await db.insertLocation(siteID: fx.ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/ccat-buffer"))
            try await db.setLinkWindows(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, windows: [
                LinkWindow(starts: "20:00", ends: "08:00", timezone: "America/Santiago", maxBitsPerSecond: 100_000_000),
                LinkWindow(starts: "23:00", ends: "01:00", timezone: "America/Santiago", maxBitsPerSecond: 40_000_000),
            ])
            #expect(try await db.linkWindows(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id).map(\.summary)
                    == ["20:00-08:00 America/Santiago 100 Mbit/s", "23:00-01:00 America/Santiago 40 Mbit/s"])
            func cap(at time: String) async throws -> Int64? {
                try await connection.query("SELECT ccat_link_rate_cap(\(fx.ccat.id), \(fx.cologne.id), \(time)::timestamptz) AS cap").first?["cap"]
            }
            // Santiago is UTC-3 in December (summer time).
            #expect(try await cap(at: "2026-12-03 02:00:00-03") == 100_000_000)
            #expect(try await cap(at: "2026-12-03 21:30:00-03") == 100_000_000)
            #expect(try await cap(at: "2026-12-03 23:30:00-03") == 40_000_000)
            #expect(try await cap(at: "2026-12-03 12:00:00-03") == nil)
            #expect(try await cap(at: "2026-12-03 08:00:00-03") == nil)

            // A window around now: the cap is divided among the link's transfer jobs.
            try await db.setLinkWindows(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, windows: [])
            let now = try #require(try await connection.query("SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 hour', 'HH24:MI') AS a, to_char(now() AT TIME ZONE 'UTC' + interval '1 hour', 'HH24:MI') AS b").first)
            try await db.setLinkWindows(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, windows: [
                LinkWindow(starts: try now["a"], ends: try now["b"], timezone: "UTC", maxBitsPerSecond: 90_000_000)])
            var transfers: [Int64] = []
            for index in 0..<3 {
                let bundle = try await db.createDataTransferPackage(name: "b\(index)", originLocationID: origin.id, relativePath: "bundles/b\(index).tar", packageIDs: [])
                let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: origin.id, destinationLocationID: fx.buffer.id, routeID: nil, method: .rsync)
                transfers.append(transfer.id)
                let operation = try #require(try await db.createOperation(.dataTransfer, queue: "q", locationID: origin.id, target: .dataTransfer(transfer.id)))
                if index < 2 {
                    _ = try await db.createBatchJob(id: try await db.nextBatchJobID(), scheduler: .local, cluster: nil, queue: "q", locationID: origin.id,
                                                    operationType: .dataTransfer, scriptPath: "/tmp/j.sh", stdoutPath: "/tmp/j.out", stderrPath: "/tmp/j.err",
                                                    operationIDs: [operation.id])
                }
            }
            #expect(try await db.linkRateShare(transferID: transfers[0]) == 45_000_000)
            #expect(try await db.linkConcurrency().first { $0.destination == "cologne" }?.rateCapBitsPerSecond == 90_000_000)
            // No window in force: no cap.
            try await db.setLinkWindows(originSiteID: fx.ccat.id, destinationSiteID: fx.cologne.id, windows: [])
            #expect(try await db.linkRateShare(transferID: transfers[0]) == nil)
        }
    }
}
