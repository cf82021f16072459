import Crypto
import Foundation
import OpsDB
import Postgres
import Processes
import Testing
import TestSupport

/// A bundle sent from the telescope host to the Cologne host over a slow link, stopped twice on
/// the way (SIGTERM, as a job's walltime warning or a cancel does): each run continues from what
/// had arrived, the stops cost no attempt, and the bytes that crossed the link are about one bundle.
@Suite("Resuming a bundle across stops", .serialized, .enabled(if: TestEnvironment.runSitesTests, "requires root and iproute2: run 'make test' as root"))
struct ResumeTests {
    static let bundleBytes = 24 << 20

    @Test func aBundleStoppedTwiceContinuesWhereItWas() async throws {
        try await TestEnvironment.withSitesToThemselves { try await stopTwiceAndResume() }
    }

    func stopTwiceAndResume() async throws {
        let sites = try TestEnvironment.requireSites()
        // 40 Mbit/s: the bundle needs about 5 s on the link, time enough to stop it twice.
        _ = try Self.wanOn(rate: "40mbit", delay: "1ms")
        defer { Self.wanOff() }

        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            // A bundle of random bytes (so rsync finds nothing to reuse but what arrived before).
            let (_, operation) = try await Self.randomBundle(pipeline, bytes: Self.bundleBytes, name: "big")
            let bundlePath = pipeline.path("buffer/bundles/big.tar")
            var environment = ProcessInfo.processInfo.environment.merging(pipeline.environment) { $1 }
            environment["CCAT_SSH_CONFIG"] = sites.appendingPathComponent("ssh_config").path
            let arrivals = pipeline.path("cologne/buffer/bundles")
            /// Bytes of the bundle at the destination: rsync's temporary file, or the partial it keeps.
            @Sendable func arrived() -> Int {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: arrivals)) ?? []
                let temporary = names.filter { $0.hasPrefix(".big.tar.") }.map { "\(arrivals)/\($0)" }
                return (temporary + ["\(arrivals)/.ccat-rsync-partial/big.tar"]).map {
                    ((try? FileManager.default.attributesOfItem(atPath: $0))?[.size] as? NSNumber)?.intValue ?? 0
                }.max() ?? 0
            }
            func runner() throws -> ChildProcess {
                try ChildProcess.spawn("/usr/bin/env", ["ip", "netns", "exec", "ccat-telescope",
                                                        TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                        "exec", "--operation", String(operation.id)], environment: environment)
            }
            let before = try Self.sentBytes()
            // Stopped at a third and at two thirds of the way.
            for fraction in [1.0 / 3, 2.0 / 3] {
                let run = try runner()
                let threshold = Int(Double(Self.bundleBytes) * fraction)
                let caught = try await run.kill(within: .seconds(120), signal: SIGTERM) { arrived() >= threshold }
                #expect(caught, "the copy ended (or never started) before \(Int(fraction * 100))% had arrived")
                _ = try run.wait()
                let after = try #require(try await db.operation(id: operation.id))
                #expect(after.state == .pending && after.attempts == 0, "a planned stop is not a failed attempt: \(after.state) \(after.attempts)")
                // The receiving rsync keeps what arrived in its partial directory as the
                // connection closes; the next run starts from there.
                let kept = try await eventually(within: .seconds(30)) {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: arrivals)) ?? []
                    return !names.contains { $0.hasPrefix(".big.tar.") } && FileManager.default.fileExists(atPath: "\(arrivals)/.ccat-rsync-partial/big.tar")
                }
                #expect(kept && arrived() >= threshold, "what had arrived was not kept for the next run")
            }
            let last = try runner()
            #expect(try last.wait() == 0)
            let done = try #require(try await db.operation(id: operation.id))
            #expect(done.state == .succeeded)
            #expect(FileManager.default.contentsEqual(atPath: bundlePath, andPath: "\(arrivals)/big.tar"))
            // What crossed the link: the bundle once, plus ssh and rsync's own traffic (checksums
            // of the kept part, the final verification), not the parts that had already arrived.
            let sent = try Self.sentBytes() - before
            let ratio = Double(sent) / Double(Self.bundleBytes)
            print("resume: \(sent) bytes left the telescope for a \(Self.bundleBytes)-byte bundle stopped twice (ratio \(String(format: "%.3f", ratio)))")
            #expect(ratio > 0.95 && ratio < 1.10, "\(sent) bytes crossed the link for \(Self.bundleBytes) (ratio \(ratio))")
        }
    }

    /// The emulated WAN between the telescope and Cologne hosts: a TCP handshake takes at least
    /// the round trip, a cut drops everything until the link is restored, and traffic to the other
    /// hosts keeps the bridge.
    @Test func theEmulatedWANDelaysCutsAndRestores() async throws {
        try await TestEnvironment.withSitesToThemselves { try await emulatedWAN() }
    }

    func emulatedWAN() async throws {
        _ = try TestEnvironment.requireSites()
        let on = try Self.wanOn(rate: "100mbit", delay: "150ms")
        #expect(on.contains("delay 150ms each way, rate 100mbit each way") && on.contains("TCP on both hosts: cubic"), "\(on)")
        defer { Self.wanOff() }
        /// Seconds a TCP connection from the telescope host to ADDRESS:22 takes, or nil when it fails within 3 s.
        func connectSeconds(_ address: String) throws -> Double? {
            let probe = try runProcess("/usr/bin/env", ["ip", "netns", "exec", "ccat-telescope", "python3", "-c", """
                import socket, sys, time
                start = time.monotonic()
                try:
                    socket.create_connection((sys.argv[1], 22), timeout=3).close()
                except OSError:
                    sys.exit(3)
                print(time.monotonic() - start)
                """, address])
            return probe.status == 0 ? Double(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) : nil
        }
        let cologne = try #require(try connectSeconds("10.77.0.20"), "the cologne host does not answer over the WAN")
        #expect(cologne >= 0.29, "a handshake with Cologne took \(cologne) s, less than the 300 ms round trip")
        #expect(try connectSeconds("10.77.0.30") != nil, "the US host does not answer over the bridge")

        let down = try runProcess("/bin/bash", [Self.sitesScript, "link", "down"])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(try connectSeconds("10.77.0.20") == nil, "the cologne host answered with the link cut")
        let up = try runProcess("/bin/bash", [Self.sitesScript, "link", "up"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(try connectSeconds("10.77.0.20") != nil, "the cologne host does not answer after the link came back")
    }

    /// A bandwidth window in force on the telescope's link to Cologne caps what crosses it.
    @Test func aBandwidthWindowCapsWhatCrossesTheLink() async throws {
        try await TestEnvironment.withSitesToThemselves { try await sendUnderACap() }
    }

    func sendUnderACap() async throws {
        let sites = try TestEnvironment.requireSites()
        Self.wanOff()
        let cap: Int64 = 16_000_000
        // About 8 s at the cap. Without netem the veth pair carries far more, so the cap is what
        // limits the copy: the runner gives rsync its share (the log says so) and the wire carries
        // no more. How close to the cap it gets depends on the machine's load, and is not asserted.
        let bytes = 16 << 20
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (transfer, operation) = try await Self.randomBundle(pipeline, bytes: bytes, name: "capped")
            let telescope = try #require(try await db.location(siteShortName: "ccat", name: "buffer"))
            let cologne = try #require(try await db.location(siteShortName: "cologne", name: "buffer"))
            // A window from an hour ago to an hour from now, in UTC.
            let now = try #require(try await db.connection.query("""
                SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 hour', 'HH24:MI') AS a, to_char(now() AT TIME ZONE 'UTC' + interval '1 hour', 'HH24:MI') AS b
                """).first)
            try await db.setLinkWindows(originSiteID: telescope.siteID, destinationSiteID: cologne.siteID,
                                        windows: [LinkWindow(starts: try now["a"], ends: try now["b"], timezone: "UTC", maxBitsPerSecond: cap)])
            var environment = ProcessInfo.processInfo.environment.merging(pipeline.environment) { $1 }
            environment["CCAT_SSH_CONFIG"] = sites.appendingPathComponent("ssh_config").path
            let before = try Self.sentBytes()
            let started = ContinuousClock.now
            let fixed = environment
            let run = try await offPool {
                try runProcess("/usr/bin/env", ["ip", "netns", "exec", "ccat-telescope", TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                "exec", "--operation", String(operation.id)], environment: fixed)
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try await db.dataTransfer(id: transfer.id)?.status == .completed)
            let wire = Double(try Self.sentBytes() - before) * 8 / seconds
            print("bandwidth window: \(Int(wire)) bit/s crossed the link under a cap of \(cap) (\(String(format: "%.2f", wire / Double(cap))) of it)")
            #expect(wire <= Double(cap) * 1.05, "the link carried \(Int(wire)) bit/s under a cap of \(cap)")
            let log = try String(contentsOfFile: try #require(try await db.operation(id: operation.id)?.logPath), encoding: .utf8)
            #expect(log.contains("this transfer's share is 16 Mbit/s") && log.contains("--bwlimit="), "\(log)")
        }
    }

    /// A window that opens while a bundle is on its way applies to that transfer: the runner asks
    /// for its share again, restarts rsync with the cap (keeping what has arrived), and the rest
    /// crosses under the cap.
    @Test func aWindowOpeningDuringATransferSlowsIt() async throws {
        try await TestEnvironment.withSitesToThemselves { try await windowOpensMidway() }
    }

    func windowOpensMidway() async throws {
        let sites = try TestEnvironment.requireSites()
        // 16 Mbit/s: a quarter of the bundle arrives after about 3 s, and the runner has about 9 s
        // more to notice the window (every second here) before the copy would be done anyway.
        _ = try Self.wanOn(rate: "16mbit", delay: "1ms")
        defer { Self.wanOff() }
        let cap: Int64 = 8_000_000
        let bytes = 24 << 20
        try await Pipeline.with(.disk) { pipeline in
            let db = pipeline.db
            let (transfer, operation) = try await Self.randomBundle(pipeline, bytes: bytes, name: "midway")
            let telescope = try #require(try await db.location(siteShortName: "ccat", name: "buffer"))
            let cologne = try #require(try await db.location(siteShortName: "cologne", name: "buffer"))
            var environment = ProcessInfo.processInfo.environment.merging(pipeline.environment) { $1 }
            environment["CCAT_SSH_CONFIG"] = sites.appendingPathComponent("ssh_config").path
            environment["CCAT_BANDWIDTH_RECHECK"] = "1"
            let arrivals = pipeline.path("cologne/buffer/bundles")
            @Sendable func arrived() -> Int {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: arrivals)) ?? []
                return (names.filter { $0.hasPrefix(".midway.tar.") }.map { "\(arrivals)/\($0)" } + ["\(arrivals)/.ccat-rsync-partial/midway.tar"]).map {
                    ((try? FileManager.default.attributesOfItem(atPath: $0))?[.size] as? NSNumber)?.intValue ?? 0
                }.max() ?? 0
            }
            let run = try ChildProcess.spawn("/usr/bin/env", ["ip", "netns", "exec", "ccat-telescope",
                                                              TestEnvironment.binDirectory.appendingPathComponent("ccat-runner").path,
                                                              "exec", "--operation", String(operation.id)], environment: environment)
            // A quarter of the way at the link's speed, then a window from an hour ago to an hour on.
            #expect(try await eventually(within: .seconds(120)) { arrived() >= bytes / 4 }, "a quarter of the bundle never arrived")
            let now = try #require(try await db.connection.query("""
                SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 hour', 'HH24:MI') AS a, to_char(now() AT TIME ZONE 'UTC' + interval '1 hour', 'HH24:MI') AS b
                """).first)
            try await db.setLinkWindows(originSiteID: telescope.siteID, destinationSiteID: cologne.siteID,
                                        windows: [LinkWindow(starts: try now["a"], ends: try now["b"], timezone: "UTC", maxBitsPerSecond: cap)])
            // The runner notices within its recheck interval; from its restart on, the rest is capped.
            // (`ccat-runner exec` logs under the state directory's exec/.)
            let logPath = pipeline.path("state/exec/operation-\(operation.id).log")
            let log = { () -> String in (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
            let restartedForWindow = try await eventually(within: .seconds(60)) { log().contains("restarting rsync") }
            let logAtRestart = log()
            #expect(restartedForWindow, "the runner did not restart rsync for the window: \(logAtRestart)")
            let before = try Self.sentBytes()
            let atRestart = arrived()
            let restarted = ContinuousClock.now
            let status = try run.wait()
            let finalLog = log()
            #expect(status == 0, "\(finalLog)")
            let elapsed = ContinuousClock.now - restarted
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            #expect(try await db.dataTransfer(id: transfer.id)?.status == .completed)
            #expect(FileManager.default.contentsEqual(atPath: pipeline.path("buffer/bundles/midway.tar"), andPath: "\(arrivals)/midway.tar"))
            let wire = Double(try Self.sentBytes() - before) * 8 / seconds
            print("window opening mid-transfer: \(atRestart) of \(bytes) bytes had arrived; the rest crossed at \(Int(wire)) bit/s under a cap of \(cap)")
            #expect(wire <= Double(cap) * 1.05, "after the restart the link carried \(Int(wire)) bit/s under a cap of \(cap)")
            #expect(finalLog.contains("the link's bandwidth share changed from no cap to 8 Mbit/s"), "\(finalLog)")
            // What had arrived before the window was kept: the rest is what crossed afterwards.
            #expect(Double(try Self.sentBytes() - before) < Double(bytes - atRestart) * 1.1 + 1_000_000)
        }
    }

    /// A bundle of random bytes (so rsync finds nothing to reuse) at the telescope's buffer, its
    /// transfer by rsync to the Cologne host's buffer, and the transfer's operation.
    static func randomBundle(_ pipeline: Pipeline, bytes: Int, name: String) async throws -> (DataTransfer, OperationRecord) {
        let db = pipeline.db
        try FileManager.default.createDirectory(atPath: pipeline.path("buffer/bundles"), withIntermediateDirectories: true)
        var random = SystemRandomNumberGenerator()
        let data = Data((0..<bytes / 8).flatMap { _ in withUnsafeBytes(of: random.next() as UInt64) { Array($0) } })
        try data.write(to: URL(fileURLWithPath: pipeline.path("buffer/bundles/\(name).tar")))
        let checksum = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        let telescopeBuffer = try await pipeline.location("ccat", "buffer")
        let cologneBuffer = try await pipeline.location("cologne", "buffer")
        let bundle = try await db.createDataTransferPackage(name: name, originLocationID: telescopeBuffer.id, relativePath: "bundles/\(name).tar", packageIDs: [])
        try await db.connection.execute("""
            UPDATE data_transfer_package SET status = 'COMPLETED', size_bytes = \(Int64(data.count)), checksum = \(checksum) WHERE id = \(bundle.id)
            """)
        try await db.setSSHHost(locationID: cologneBuffer.id, "ccat-cologne")
        let transfer = try await db.createDataTransfer(bundleID: bundle.id, originLocationID: telescopeBuffer.id,
                                                       destinationLocationID: cologneBuffer.id, routeID: nil, method: .rsync)
        return (transfer, try await pipeline.operation(.dataTransfer, at: telescopeBuffer, .dataTransfer(transfer.id)))
    }

    static let sitesScript = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/local-sites.sh").path

    /// The telescope-cologne path as an emulated WAN without loss (`local-sites.sh wan on`); what
    /// the script printed.
    static func wanOn(rate: String, delay: String) throws -> String {
        let on = try runProcess("/bin/bash", [sitesScript, "wan", "on"], environment: ProcessInfo.processInfo.environment.merging(
            ["CCAT_WAN_RATE": rate, "CCAT_WAN_LOSS": "0", "CCAT_WAN_DELAY": delay]) { $1 })
        try #require(on.status == 0, "scripts/local-sites.sh wan on: \(on.stderr)")
        return on.stdout
    }

    static func wanOff() { _ = try? runProcess("/bin/bash", [sitesScript, "wan", "off"]) }

    /// Bytes the telescope host has sent on its links: the bridge, and the emulated WAN to Cologne
    /// while it is on.
    static func sentBytes() throws -> Int {
        let read = try runProcess("/usr/bin/env", ["ip", "netns", "exec", "ccat-telescope", "sh", "-c",
                                                   "cat /sys/class/net/eth0/statistics/tx_bytes /sys/class/net/wan0/statistics/tx_bytes 2>/dev/null"])
        let counts = read.stdout.split(whereSeparator: \.isNewline).compactMap { Int($0) }
        try #require(!counts.isEmpty, "\(read.stderr)")
        return counts.reduce(0, +)
    }
}
