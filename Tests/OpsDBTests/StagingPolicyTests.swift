import Foundation
@testable import OpsDB
import Postgres
import Testing
import TestSupport

/// The one set of staging rules that `ccat stage request` and the daemon both apply.
@Suite("Staging policy")
struct StagingPolicyTests {
    static func location(_ name: String, site: String, active: Bool = true, groups: [String] = ["astro"], quota: Int64? = nil) -> StagingLocation {
        StagingLocation(id: Int64(name.count), name: name, site: site, active: active, rootPath: "/scratch", allowedGroups: groups,
                        quotaBytesPerUser: quota, retentionSeconds: nil)
    }

    @Test func locationsAreNamedUniquelyAndMustBeActive() throws {
        let locations = [Self.location("ramses", site: "cologne"), Self.location("ramses", site: "us"), Self.location("old", site: "us", active: false)]
        #expect(try StagingPolicy.location(named: "us.ramses", in: locations).site == "us")
        let ambiguous = #expect(throws: StagingPolicy.Refusal.self) { try StagingPolicy.location(named: "ramses", in: locations) }
        #expect(ambiguous?.description.contains("cologne.ramses, us.ramses") == true, "\(String(describing: ambiguous))")
        let unknown = #expect(throws: StagingPolicy.Refusal.self) { try StagingPolicy.location(named: "buffer", in: locations) }
        #expect(unknown?.description.hasPrefix("'buffer' is not a PROCESSING location") == true)
        let inactive = #expect(throws: StagingPolicy.Refusal.self) { try StagingPolicy.location(named: "old", in: locations) }
        #expect(inactive?.description.contains("is not active") == true)
    }

    @Test func theAccountMustBeInAStagingGroup() throws {
        let location = Self.location("ramses", site: "cologne", groups: ["astro", "radio"])
        try StagingPolicy.checkGroups(location, account: "alice", groups: ["users", "radio"])
        let refused = #expect(throws: StagingPolicy.Refusal.self) { try StagingPolicy.checkGroups(location, account: "eve", groups: ["users"]) }
        #expect(refused?.description == "ramses allows the groups astro, radio; eve is in users. Ask your administrator to add you to one of them")
        let nobody = #expect(throws: StagingPolicy.Refusal.self) {
            try StagingPolicy.checkGroups(Self.location("ramses", site: "cologne", groups: []), account: "alice", groups: ["astro"])
        }
        #expect(nobody?.description.contains("allows no group yet") == true)
    }

    /// What a user holds is what their open requests were accepted with, at that location only;
    /// ended requests and other users' do not count.
    @Test func theQuotaCountsOpenRequestsOfThatUserAtThatLocation() async throws {
        try await withTestDatabase { _, connection in
            try await Migrator.bundled().migrate(connection)
            let db = OpsDB(connection)
            let site = try await db.insertSite(name: "Cologne", shortName: "cologne")
            let here = try await db.insertLocation(siteID: site.id, name: "ramses", type: .processing, storage: .disk(rootPath: "/scratch/a"))
            let there = try await db.insertLocation(siteID: site.id, name: "other", type: .processing, storage: .disk(rootPath: "/scratch/b"))
            try await connection.execute("INSERT INTO processing_policy (data_location_id, allowed_groups, quota_bytes_per_user) VALUES (\(here.id), '{astro}', 1000)")
            let selection = StagingSelection(observations: ["obs-1"], packages: [], instruments: [], from: nil, to: nil)
            func request(_ user: String, at location: Int64, bytes: Int64, ended: Bool = false) async throws {
                let id = try await db.submitStagingRequest(credential: UUID().uuidString, selection: selection, destinationLocationID: location)
                try await db.acceptStagingRequest(id, uid: 1000, gid: 1000, username: user, packageCount: 1, totalBytes: bytes, reason: nil)
                if ended { try await connection.execute("UPDATE staging_request SET status = 'RELEASED' WHERE id = \(id)") }
            }
            try await request("alice", at: here.id, bytes: 600)
            try await request("alice", at: here.id, bytes: 5000, ended: true)
            try await request("alice", at: there.id, bytes: 5000)
            try await request("bob", at: here.id, bytes: 900)
            let location = try #require(try await db.stagingLocations().first { $0.id == here.id })
            try await StagingPolicy.checkQuota(location, username: "alice", bytes: 400, db)
            let refused = await #expect(throws: StagingPolicy.Refusal.self) { try await StagingPolicy.checkQuota(location, username: "alice", bytes: 401, db) }
            #expect(refused?.description.contains("this request needs 401 B, your open requests hold 600 B of 1.0 KB") == true, "\(String(describing: refused))")
        }
    }

    @Test func whatCannotBeStagedYetIsCountedInWords() {
        func package(_ id: Int64?, files: Int, archivedAt sites: Int) -> SelectedPackage {
            SelectedPackage(packageID: id, package: id.map { "p\($0)" }, obsID: "obs", files: files, bytes: 10, packageStatus: nil,
                            packageBytes: nil, archiveSites: sites, packageCreatedAt: nil)
        }
        #expect([package(1, files: 3, archivedAt: 2)].notStageableYet == nil)
        #expect([package(nil, files: 1, archivedAt: 0)].notStageableYet == "1 file is not packaged yet")
        #expect([package(1, files: 3, archivedAt: 0)].notStageableYet == "1 of 1 package is not archived yet")
        #expect([package(1, files: 3, archivedAt: 0), package(2, files: 3, archivedAt: 1), package(3, files: 3, archivedAt: 0),
                 package(nil, files: 4, archivedAt: 0)].notStageableYet == "2 of 3 packages are not archived yet, 4 files are not packaged yet")
    }
}
