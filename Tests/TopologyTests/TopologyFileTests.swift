import Foundation
import OpsDB
import Postgres
import Testing
import TestSupport
@testable import Topology

@Suite("Topology files: validation (pure logic)")
struct TopologyValidationTests {
    /// Each broken file names its problem, the field, and the line it is on.
    static let broken: [(name: String, old: String, new: String, field: String, message: String, line: Int)] = [
        ("link to no site", "{from: ccat, to: us, min_active: 1", "{from: ccat, to: usa, min_active: 1", "links[1].to", "'usa' is not a site of this file", 118),
        ("link bounds reversed", "max_active: 16", "max_active: 1", "links[0].max_active", "must be at least min_active (2), got 1", 113),
        ("window time", "{from: \"20:00\", to: \"08:00\"", "{from: \"20:00\", to: \"8 am\"", "links[0].windows[0].to", "expected a time of day as HH:MM", 117),
        ("window zone", "timezone: America/Santiago", "timezone: Chile/Atacama", "links[0].windows[0].timezone", "unknown time zone 'Chile/Atacama'", 117),
        ("window rate", "max_rate: 100Mbit/s", "max_rate: fast", "links[0].windows[0].max_rate", "expected a rate such as 100Mbit/s", 117),
        ("unknown location type", "type: SOURCE\n        storage: {disk: {root: /data/ccat/chai_raw_data}}", "type: SORCE\n        storage: {disk: {root: /data/ccat/chai_raw_data}}",
         "sites[0].locations[1].type", "unknown location type 'SORCE' (allowed: SOURCE, BUFFER, LONG_TERM_ARCHIVE, PROCESSING)", 33),
        ("duplicate short name", "short_name: us", "short_name: cologne", "sites[2].short_name", "duplicate site short name 'cologne'", 90),
        ("duplicate location name", "name: buffer_secondary", "name: buffer", "sites[1].locations[1].name", "duplicate location name 'buffer' at site 'cologne'", 55),
        ("PROCESSING on S3", "storage: {disk: {root: /scratch/ccat/staging}}",
         "storage: {s3: {endpoint: https://s3.example, bucket: scratch, credentials: env:S3}}",
         "sites[1].locations[4].storage", "PROCESSING locations cannot use S3 storage in this version (supported: DISK)", 79),
        ("negative priority", "priority: 2", "priority: -2", "sites[1].locations[1].priority", "priority must be 0 or more", 57),
        ("override of an operation the location does not run", "data_transfer: {time_limit: \"1-00:00:00\", cpus: 8, max_operations_per_job: 4}",
         "staging: {cpus: 8}", "sites[0].locations[2].batch.operations.staging", "staging does not run at BUFFER locations", 44),
        ("unknown operation in an override", "staging: {qos: interactive, time_limit: \"30:00\"}", "stageing: {qos: interactive}",
         "sites[1].locations[4].batch.operations.stageing", "unknown operation 'stageing'", 88),
        ("unknown key", "fill_threshold_percent: 85", "fill_treshold_percent: 85", "sites[0].locations[2].fill_treshold_percent", "unknown key 'fill_treshold_percent'", 39),
        ("relative disk root", "root: /archive/ccat", "root: archive/ccat", "sites[2].locations[1].storage.disk.root", "must be an absolute path", 99),
        ("secret in credentials", "credentials: env:CCAT_S3_COLOGNE", "credentials: AKIAIOSFODNN7EXAMPLE", "sites[1].locations[3].storage.s3.credentials", "never put keys in the topology file", 74),
        ("bad time limit", "time_limit: \"2:00:00\"", "time_limit: two hours", "batch.time_limit", "'two hours' is not a Slurm time limit", 17),
        ("buffers sharing a priority", "priority: 2", "priority: 1", "sites[1].locations[1].priority", "both have priority 1", 55),
        ("missing storage", "        storage: {disk: {root: /data/us/buffer}}\n", "", "sites[2].locations[0].storage", "missing; this field is required", 94),
        ("bad short name", "short_name: us", "short_name: US-East", "sites[2].short_name", "'US-East' is not a valid short name", 90),
        ("staging policy on a buffer", "fill_threshold_percent: 85", "staging: {groups: [ccat]}", "sites[0].locations[2].staging",
         "only PROCESSING locations take staging requests", 39),
        ("integrity settings on a buffer", "fill_threshold_percent: 85", "integrity: {fixity_cycle: 30d}", "sites[0].locations[2].integrity",
         "only LONG_TERM_ARCHIVE locations are fixity-checked", 39),
        ("fixity cycle that is not a duration", "fixity_cycle: 90d", "fixity_cycle: quarterly", "sites[2].locations[1].integrity.fixity_cycle",
         "'quarterly' is not a duration above 0", 104),
        ("brake count below one", "brake_count: 100", "brake_count: 0", "sites[2].locations[1].integrity.brake_count", "must be 1 or more", 104),
        ("more required archive sites than there are", "sites:\n", "required_archive_sites: 3\nsites:\n", "required_archive_sites",
         "3 archive sites are required but only 2 sites have an active long-term archive", 23),
        ("ssh host that is an option", "root: /archive/ccat}", "root: /archive/ccat, host: \"-oProxyCommand=evil\"}",
         "sites[2].locations[1].storage.disk.host", "expected an ssh destination", 99),
        ("quota that is not a size", "quota_per_user: 20TB", "quota_per_user: lots", "sites[1].locations[4].staging.quota_per_user",
         "'lots' is not a size", 82),
        // Batch values the job-script renderer would refuse at every submission.
        ("extra option the renderer owns", "constraint: buffer", "constraint: buffer\n          extra: [\"--comment=mine\"]",
         "sites[0].locations[2].batch.extra[0]", "sets --comment, which ccat writes itself", 43),
        ("constraint with spaces", "constraint: buffer", "constraint: \"fast disk\"", "sites[0].locations[2].batch.constraint",
         "contains spaces, quotes or control characters", 42),
        // Numbers that overflowed (a crash) or did not fit the schema (a raw SQL error).
        ("duration that overflows", "retention: 14d", "retention: 99999999999999999w", "sites[1].locations[4].retention", "is not a duration", 78),
        ("time limit that overflows", "time_limit: \"2:00:00\"", "time_limit: \"99999999999999-00:00:00\"", "batch.time_limit", "is not a Slurm time limit", 17),
        ("number beyond the schema", "cpus: 2", "cpus: 99999999999", "batch.cpus", "is too large", 18),
        ("memory beyond the schema", "memory: 4G", "memory: 9999999T", "batch.memory", "is not a memory size", 19),
        ("credentials in the endpoint URL", "endpoint: https://s3.datastorage.nrw.example", "endpoint: https://AKIA:hunter2@s3.datastorage.nrw.example",
         "sites[1].locations[3].storage.s3.endpoint", "must not carry credentials", 70),
        ("root of /", "root: /archive/ccat}", "root: /}", "sites[2].locations[1].storage.disk.root", "'/' cannot be a location's root", 99),
        ("root with a newline", "root: /archive/ccat}", "root: \"/archive/cc\\nat\"}", "sites[2].locations[1].storage.disk.root", "contains a control character", 99),
        // An archive in the buffer's directory: cleaning the buffer would delete the archive.
        ("archive root equal to the buffer's", "root: /archive/ccat}", "root: /data/us/buffer/}", "sites[2].locations[1].storage",
         "'us:long_term_archive' and 'us:buffer' (line 96, sites[2].locations[0]) share storage: the same directory /data/us/buffer", 99),
        ("root nested in another location's", "root: /data/cologne/buffer_backup}", "root: /data/cologne//buffer/./backup}",
         "sites[1].locations[2].storage", "share storage: /data/cologne/buffer/backup lies inside /data/cologne/buffer", 65),
    ]

    /// A file that multiplies blocks through nested aliases is refused at once, not walked.
    @Test func aliasesNestedToExpandHugelyAreRefused() throws {
        var text = "x0: &x0 [a, b, c, d]\n"
        for level in 1...30 { text += "x\(level): &x\(level) [*x\(level - 1), *x\(level - 1)]\n" }
        text += "sites: []\n"
        let error = #expect(throws: TopologyValidationError.self) { try TopologyParser.parse(text, file: "bomb.yaml") }
        #expect(error?.issues.first?.message.contains("expands to more than") == true, "\(error?.description ?? "")")
    }

    @Test func credentialsInAnEndpointAreNeverPrintedBack() throws {
        let text = try exampleTopology(replacing: "endpoint: https://s3.datastorage.nrw.example", with: "endpoint: https://AKIA:hunter2@s3.datastorage.nrw.example")
        let error = #expect(throws: TopologyValidationError.self) { try TopologyParser.parse(text, file: "topology.yaml") }
        #expect(error?.description.contains("hunter2") == false)
    }

    @Test(arguments: 0..<broken.count)
    func brokenFileNamesItsProblem(_ index: Int) throws {
        let case_ = Self.broken[index]
        let text = try exampleTopology(replacing: case_.old, with: case_.new)
        let error = #expect(throws: TopologyValidationError.self, "\(case_.name)") {
            try TopologyParser.parse(text, file: "topology.yaml")
        }
        let issue = try #require(error?.issues.first { $0.field == case_.field }, "\(case_.name): no issue for \(case_.field) in \(error?.description ?? "")")
        #expect(issue.message.contains(case_.message), "\(case_.name): \(issue.message)")
        #expect(issue.file == "topology.yaml")
        #expect(issue.line == case_.line, "\(case_.name): reported on line \(issue.line.map(String.init) ?? "none")")
        #expect(error?.description.contains("topology.yaml:\(issue.line ?? 0): \(case_.field): ") == true)
    }

    /// Where two roots may and may not coincide.
    @Test func storageOverlapRules() {
        typealias Place = StorageOverlap.Place
        func s3(_ endpoint: String, _ bucket: String, _ prefix: String, site: String = "cologne") -> Place {
            Place(site: site, storage: .s3(endpointURL: endpoint, bucket: bucket, region: "us-east-1", prefix: prefix, credentialsSource: "env:S3", pathStyle: true), host: nil)
        }
        func disk(_ root: String, site: String, host: String? = nil) -> Place { Place(site: site, storage: .disk(rootPath: root), host: host) }
        // One site: equal or nested after normalisation, never siblings.
        #expect(StorageOverlap.overlap(disk("/data/a", site: "x"), disk("/data/a/", site: "x")) == "the same directory /data/a")
        #expect(StorageOverlap.overlap(disk("/data", site: "x"), disk("/data/./a", site: "x")) == "/data/a lies inside /data")
        #expect(StorageOverlap.overlap(disk("/data/a", site: "x"), disk("/data/ab", site: "x")) == nil)
        // Different sites are different machines, unless they name the same host.
        #expect(StorageOverlap.overlap(disk("/data/buffer", site: "x"), disk("/data/buffer", site: "y")) == nil)
        #expect(StorageOverlap.overlap(disk("/data/buffer", site: "x", host: "dtn.example"), disk("/data/buffer/in", site: "y", host: "DTN.example")) != nil)
        #expect(StorageOverlap.overlap(disk("/data/buffer", site: "x", host: "dtn.example"), disk("/data/buffer", site: "x")) == nil)
        // S3: one endpoint and bucket, prefixes nested at '/' boundaries; any site.
        #expect(StorageOverlap.overlap(s3("https://s3.example/", "b", "raw/"), s3("https://S3.example:443", "b", "raw", site: "us")) == "the same bucket prefix s3://b/raw")
        #expect(StorageOverlap.overlap(s3("https://s3.example", "b", ""), s3("https://s3.example", "b", "raw/x")) == "s3://b/raw/x lies inside s3://b/")
        #expect(StorageOverlap.overlap(s3("https://s3.example", "b", "raw"), s3("https://s3.example", "b", "raw2")) == nil)
        #expect(StorageOverlap.overlap(s3("https://s3.example", "b", "raw"), s3("https://s3.example", "c", "raw")) == nil)
        #expect(StorageOverlap.overlap(s3("https://s3.example", "b", "raw"), disk("/raw", site: "cologne")) == nil)
    }

    @Test func exampleParses() throws {
        let spec = try TopologyParser.parse(contentsOf: exampleTopologyPath)
        #expect(spec.sites.map(\.shortName) == ["ccat", "cologne", "us"])
        #expect(spec.links == [LinkSpec(from: "ccat", to: "cologne", minActive: 2, maxActive: 16,
                                        windows: [LinkWindow(starts: "20:00", ends: "08:00", timezone: "America/Santiago", maxBitsPerSecond: 100_000_000)]),
                               LinkSpec(from: "ccat", to: "us", minActive: 1, maxActive: 8)])
        let cologne = try #require(spec.sites.first { $0.shortName == "cologne" })
        #expect(cologne.locations.filter { $0.type == .buffer }.map(\.priority) == [1, 2, 3])
        #expect(cologne.locations.first { $0.name == "buffer_backup" }?.active == false)
        let ramses = try #require(cologne.locations.first { $0.name == "ramses_processing" })
        #expect(ramses.retentionSeconds == Int64(14 * 86_400))
        // Location settings overlay the defaults; operation overrides are kept apart.
        #expect(ramses.batch.partition == "ramses")
        #expect(ramses.batch.cpus == 2)
        #expect(ramses.operationBatch[.staging]?.qos == "interactive")
        #expect(ramses.operationBatch[.staging]?.timeLimitMinutes == 30)
        #expect(ramses.staging == StagingPolicySpec(groups: ["ccat"], quotaBytesPerUser: 20 << 40))
        #expect(cologne.locations.first { $0.name == "buffer" }?.staging == StagingPolicySpec())
        // An archive's integrity settings, and the defaults where it has none.
        let us = try #require(spec.sites.last?.locations.last)
        #expect(us.integrity == IntegrityPolicy(fixityCycleSeconds: 90 * 86_400, fixityBytesPerDay: 2 << 40, auditIntervalSeconds: 7 * 86_400, brakeCount: 100))
        #expect(cologne.locations.first { $0.name == "long_term_archive" }?.integrity == IntegrityPolicy())
    }

    @Test func slurmTimesAndSizes() {
        #expect(BatchProfile.parseTimeLimit("90") == 90)
        #expect(BatchProfile.parseTimeLimit("30:00") == 30)
        #expect(BatchProfile.parseTimeLimit("30:01") == 31)
        #expect(BatchProfile.parseTimeLimit("2:00:00") == 120)
        #expect(BatchProfile.parseTimeLimit("1-00:00:00") == 1440)
        #expect(BatchProfile.parseTimeLimit("1-2") == 1560)
        #expect(BatchProfile.parseTimeLimit("0") == nil)
        #expect(BatchProfile.parseTimeLimit("1:xx") == nil)
        #expect(BatchProfile.formatMinutes(1440 + 61) == "1-01:01:00")
        #expect(BatchProfile.formatMinutes(30) == "0:30:00")
        #expect(BatchProfile.parseSize("4G", defaultUnit: 1 << 20) == 4 << 30)
        #expect(BatchProfile.parseSize("512", defaultUnit: 1 << 20) == 512 << 20)
        #expect(BatchProfile.parseSize("100GB", defaultUnit: 1) == 100 << 30)
        #expect(BatchProfile.parseSize("-1G", defaultUnit: 1) == nil)
        #expect(BatchProfile.parseSize("lots", defaultUnit: 1) == nil)
    }
}

@Suite("Topology apply, queues, routes and buffers against a real PostgreSQL", .enabled(if: TestEnvironment.runPostgresTests, "requires PostgreSQL: run 'make test'"))
struct TopologyApplyTests {
    static let expectedQueues = [
        "ccat_buffer_data_transfer", "ccat_buffer_data_transfer_package_creation", "ccat_buffer_data_transfer_unpacking",
        "ccat_buffer_deletion", "ccat_buffer_monitoring",
        "ccat_chai_raw_data_deletion", "ccat_chai_raw_data_monitoring", "ccat_chai_raw_data_raw_data_package_creation",
        "ccat_primecam_raw_data_deletion", "ccat_primecam_raw_data_monitoring", "ccat_primecam_raw_data_raw_data_package_creation",
        "cologne_buffer_data_transfer", "cologne_buffer_data_transfer_package_creation", "cologne_buffer_data_transfer_unpacking",
        "cologne_buffer_deletion", "cologne_buffer_monitoring",
        "cologne_buffer_secondary_data_transfer", "cologne_buffer_secondary_data_transfer_package_creation",
        "cologne_buffer_secondary_data_transfer_unpacking", "cologne_buffer_secondary_deletion", "cologne_buffer_secondary_monitoring",
        "cologne_long_term_archive_archive_repair", "cologne_long_term_archive_consistency_audit", "cologne_long_term_archive_fixity_check",
        "cologne_long_term_archive_long_term_archive_transfer", "cologne_long_term_archive_monitoring",
        "cologne_ramses_processing_consistency_audit", "cologne_ramses_processing_deletion", "cologne_ramses_processing_monitoring", "cologne_ramses_processing_staging",
        "us_buffer_data_transfer", "us_buffer_data_transfer_package_creation", "us_buffer_data_transfer_unpacking",
        "us_buffer_deletion", "us_buffer_monitoring",
        "us_long_term_archive_archive_repair", "us_long_term_archive_consistency_audit", "us_long_term_archive_fixity_check",
        "us_long_term_archive_long_term_archive_transfer", "us_long_term_archive_monitoring",
    ]

    @Test func exampleAppliesAndYieldsExactlyTheMatrixQueues() async throws {
        try await withExampleTopology { _, db in
            let queues = try await QueueDiscovery.discover(db)
            #expect(queues.map(\.name) == Self.expectedQueues)
            // Every name is a valid Slurm job name and follows {site}_{location}_{operation}.
            for queue in queues {
                #expect(queue.name.wholeMatch(of: /[a-z0-9_]+/) != nil)
                #expect(queue.name == "\(queue.siteShortName)_\(queue.locationName)_\(queue.operation.queueSuffix)")
            }
            // The inactive buffer has no queues; profiles are merged default -> location -> operation.
            #expect(!queues.contains { $0.locationName == "buffer_backup" })
            let staging = try #require(queues.first { $0.name == "cologne_ramses_processing_staging" })
            #expect(staging.profile.partition == "ramses" && staging.profile.qos == "interactive" && staging.profile.timeLimitMinutes == 30)
            let deletion = try #require(queues.first { $0.name == "cologne_ramses_processing_deletion" })
            #expect(deletion.profile.qos == "staging" && deletion.profile.timeLimitMinutes == 120)
            let transfer = try #require(queues.first { $0.name == "ccat_buffer_data_transfer" })
            #expect(transfer.profile.cpus == 8 && transfer.profile.constraint == "buffer" && transfer.profile.maxOperationsPerJob == 4)
        }
    }

    @Test func reapplyingChangesNothingAndDryRunWritesNothing() async throws {
        try await withExampleTopology { _, db in
            let spec = try TopologyParser.parse(contentsOf: exampleTopologyPath)
            let before = try await topologySnapshot(db)
            let again = try await TopologySync().apply(spec, to: db.connection)
            #expect(again.isEmpty)
            #expect(again.unchanged.count == 15)
            #expect(again.unchanged.contains("link ccat -> cologne"))
            #expect(try await topologySnapshot(db) == before)

            // A link's bounds change where the file says, and only there.
            let wider = try TopologyParser.parse(try exampleTopology(replacing: "max_active: 16", with: "max_active: 20"), file: "t.yaml")
            let widened = try await TopologySync().apply(wider, to: db.connection, dryRun: true)
            #expect(widened.changed == ["link ccat -> cologne: 2-16 -> 2-20 transfer jobs"], "\(widened.changed)")

            let changed = try TopologyParser.parse(try exampleTopology(replacing: "priority: 2", with: "priority: 5"), file: "t.yaml")
            let preview = try await TopologySync().apply(changed, to: db.connection, dryRun: true)
            #expect(preview.changed == ["location cologne.buffer_secondary: priority 2 -> 5"])
            #expect(try await topologySnapshot(db) == before)
            let applied = try await TopologySync().apply(changed, to: db.connection)
            #expect(applied.changed == preview.changed)
            #expect(try await db.location(siteShortName: "cologne", name: "buffer_secondary")?.priority == 5)

            // How many archive sites deletion waits for: every one by default, else the file's number.
            #expect(try await OpsDB(db.connection).requiredArchiveSites() == nil)
            let one = try TopologyParser.parse(try exampleTopology(replacing: "sites:\n", with: "required_archive_sites: 1\nsites:\n"), file: "t.yaml")
            let oneApplied = try await TopologySync().apply(one, to: db.connection)
            #expect(oneApplied.changed.contains("required archive sites all -> 1"), "\(oneApplied.changed)")
            #expect(try await OpsDB(db.connection).requiredArchiveSites() == 1)

            // A disk reached over ssh by rsync routes.
            let remote = try TopologyParser.parse(try exampleTopology(replacing: "root: /archive/ccat}", with: "root: /archive/ccat, host: dtn.us.example.org}"),
                                                  file: "t.yaml")
            let remoteApplied = try await TopologySync().apply(remote, to: db.connection)
            #expect(remoteApplied.changed.contains { $0.contains("ssh host none -> dtn.us.example.org") }, "\(remoteApplied.changed)")
            let archive = try #require(try await db.location(siteShortName: "us", name: "long_term_archive"))
            #expect(try await OpsDB(db.connection).sshHost(of: archive.id) == "dtn.us.example.org")

            // An archive's integrity settings are stored, and a change to them is applied.
            #expect(try await db.integrityPolicy(locationID: archive.id).brakeCount == 100)
            let brake = try TopologyParser.parse(try exampleTopology(replacing: "brake_count: 100", with: "brake_count: 7"), file: "t.yaml")
            let brakeApplied = try await TopologySync().apply(brake, to: db.connection)
            #expect(brakeApplied.changed == ["location us.long_term_archive: ssh host dtn.us.example.org -> none, integrity settings"], "\(brakeApplied.changed)")
            #expect(try await db.integrityPolicy(locationID: archive.id)
                    == IntegrityPolicy(fixityCycleSeconds: 90 * 86_400, fixityBytesPerDay: 2 << 40, auditIntervalSeconds: 7 * 86_400, brakeCount: 7))
        }
    }

    @Test func removedLocationWithDataIsDeactivatedNotDeleted() async throws {
        try await withExampleTopology { _, db in
            let buffer = try #require(try await db.location(siteShortName: "us", name: "buffer"))
            let source = try #require(try await db.location(siteShortName: "ccat", name: "chai_raw_data"))
            let observation = try await db.upsertObservation(obsID: "obs-1")
            let file = try await db.registerRawDataFile(NewRawDataFile(
                relativePath: "obs/a.fits", sizeBytes: 1, checksum: String(repeating: "0", count: 64), executedObsUnitID: observation.id, sourceLocationID: source.id)).file
            _ = try await db.insertPhysicalCopy(of: .rawDataFile(file.id), at: buffer.id, relativePath: "obs/a.fits", sizeBytes: 1, checksum: nil, verified: false)

            var text = try exampleTopology(replacing: "      - name: buffer\n        type: BUFFER\n        storage: {disk: {root: /data/us/buffer}}\n", with: "")
            text = text.replacingOccurrences(of: "      - name: buffer_backup\n        type: BUFFER\n        priority: 3\n        active: false\n        description: spare buffer, enabled during maintenance of the others\n        storage: {disk: {root: /data/cologne/buffer_backup}}\n", with: "")
            let changes = try await TopologySync().apply(try TopologyParser.parse(text, file: "t.yaml"), to: db.connection)
            #expect(changes.deactivated == ["location us.buffer: not in the file; deactivated, not deleted, because it still holds 1 copy"])
            #expect(changes.deleted == ["location cologne.buffer_backup"])
            #expect(try await db.location(siteShortName: "us", name: "buffer")?.active == false)
            #expect(try await db.location(siteShortName: "cologne", name: "buffer_backup") == nil)
        }
    }

    @Test func storageOfALocationHoldingDataCannotChange() async throws {
        try await withExampleTopology { _, db in
            let source = try #require(try await db.location(siteShortName: "ccat", name: "primecam_raw_data"))
            let observation = try await db.upsertObservation(obsID: "obs-1")
            let file = try await db.registerRawDataFile(NewRawDataFile(
                relativePath: "obs/a.fits", sizeBytes: 1, checksum: String(repeating: "0", count: 64), executedObsUnitID: observation.id, sourceLocationID: source.id)).file
            // Registration recorded the file's copy at the source: the location holds data.
            #expect(try await db.physicalCopies(of: .rawDataFile(file.id)).map(\.dataLocationID) == [source.id])
            let before = try await topologySnapshot(db)
            // Two changes in one file: the first is fine, the second conflicts; neither may land.
            var text = try exampleTopology(replacing: "root: /data/ccat/primecam_raw_data", with: "root: /data/elsewhere")
            text = text.replacingOccurrences(of: "name: CCAT Observatory", with: "name: CCAT Observatory (renamed)")
            let error = await #expect(throws: TopologyConflict.self) {
                try await TopologySync().apply(try TopologyParser.parse(text, file: "t.yaml"), to: db.connection)
            }
            #expect(error?.description.contains("ccat.primecam_raw_data") == true)
            #expect(try await topologySnapshot(db) == before)
        }
    }

    @Test func invalidFilesLeaveTheDatabaseUnchanged() async throws {
        try await withExampleTopology { _, db in
            let before = try await topologySnapshot(db)
            for broken in TopologyValidationTests.broken {
                let text = try exampleTopology(replacing: broken.old, with: broken.new)
                await #expect(throws: TopologyValidationError.self) {
                    try await TopologySync().apply(try TopologyParser.parse(text, file: "t.yaml"), to: db.connection)
                }
            }
            #expect(try await topologySnapshot(db) == before)
        }
    }
}
