import CCatConfig
import Foundation
import Logging
import Monitor
import OpsDB
import Postgres
import Processes
import Testing
import TestSupport

/// Alerts reach real receivers on loopback: a webhook (a small HTTP server) gets exactly one
/// message when a condition starts and one when it clears, gets it late when it was down, and a
/// digest when many start at once; an SMTP server (aiosmtpd) gets the e-mail.
@Suite(.serialized, .enabled(if: TestEnvironment.runPostgresTests))
struct AlertTests {
    let logger = Logger(label: "test.alerts")

    @Test func oneMessagePerConditionAndOneWhenItClearsEvenWhenTheReceiverWasDown() async throws {
        let python = try TestEnvironment.python(importing: "http.server")
        try await PackagingFixture.with { fixture in
            let db = fixture.db
            let port = try freeLoopbackPort()
            let manager = AlertManager(settings: AlertSettings(webhook: "http://127.0.0.1:\(port)/hooks/ccat"), site: "test")
            _ = try await db.connection.execute("""
                UPDATE operation SET state = 'intervention', attempts = 3, error_class = 'checksum_mismatch',
                       last_error = 'the package read back differs' WHERE id = \(fixture.operation.id)
                """)
            // The receiver is down: the alert is raised and its message waits.
            _ = try await manager.cycle(db, logger: logger)
            let waiting = try await db.connection.query("SELECT attempts, last_error FROM alert_message WHERE delivered_at IS NULL")
            #expect(waiting.count == 1)
            #expect(try waiting.first?["attempts"] as Int? == 1, "the first delivery was not tried")

            let received = try testScratchDirectory("webhook").appendingPathComponent("received.jsonl")
            let receiver = try Self.startWebhookReceiver(python: python, port: port, into: received)
            defer { receiver.signal(SIGKILL); _ = try? receiver.wait() }
            // Back up: the message arrives on a later cycle (after its backoff), once.
            let arrived = try await eventually(within: .seconds(90), every: .milliseconds(500)) {
                _ = try await manager.cycle(db, logger: logger)
                return Self.lines(received).count >= 1
            }
            #expect(arrived, "the raised alert never reached the receiver once it was up")
            for _ in 0..<3 { _ = try await manager.cycle(db, logger: logger) }
            var messages = Self.lines(received)
            #expect(messages.count == 1, "expected one message for one condition, got \(messages.count)")
            let raised = try #require(messages.first)
            #expect(raised["text"] as? String == "ALERT operation \(fixture.operation.id) (\(fixture.operation.operationType.rawValue) at ccat:primecam_raw_data) needs a person after 3 attempts: checksum_mismatch: the package read back differs\n  fix: ccat ops show \(fixture.operation.id); once the cause is fixed: ccat ops retry \(fixture.operation.id) (or ccat ops cancel \(fixture.operation.id))")
            #expect((raised["ccat"] as? [[String: Any]])?.first?["key"] as? String == "intervention:operation:\(fixture.operation.id)")

            // The condition ends: one CLEARED message, then nothing more.
            _ = try await db.connection.execute("UPDATE operation SET state = 'cancelled' WHERE id = \(fixture.operation.id)")
            let cleared = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
                _ = try await manager.cycle(db, logger: logger)
                return Self.lines(received).count >= 2
            }
            #expect(cleared)
            for _ in 0..<3 { _ = try await manager.cycle(db, logger: logger) }
            messages = Self.lines(received)
            #expect(messages.count == 2)
            #expect((messages.last?["text"] as? String)?.hasPrefix("CLEARED operation \(fixture.operation.id)") == true)

            // Many at once: one digest naming each.
            let locations = try await db.connection.query("SELECT id FROM data_location ORDER BY id").map { try $0["id"] as Int64 }
            #expect(locations.count >= 2)
            for location in locations {
                _ = try await db.connection.execute("""
                    INSERT INTO data_location_status (data_location_id, reachable, total_bytes, used_bytes, free_bytes, error_message)
                    VALUES (\(location), false, 100, 95, 5, 'mount point gone')
                    """)
            }
            let digest = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
                _ = try await manager.cycle(db, logger: logger)
                return Self.lines(received).count >= 3
            }
            #expect(digest)
            messages = Self.lines(received)
            #expect(messages.count == 3, "many conditions at once must go as one digest, got \(messages.count - 2) messages")
            let items = messages.last?["ccat"] as? [[String: Any]] ?? []
            // Each location is both unreachable and over its 90% threshold.
            #expect(items.count == 2 * locations.count)
            #expect(items.contains { ($0["key"] as? String)?.hasPrefix("over_threshold:") == true })
        }
    }

    @Test func eMailReachesAnSMTPServer() async throws {
        let python = try TestEnvironment.python(importing: "aiosmtpd")
        try await PackagingFixture.with { fixture in
            let db = fixture.db
            let port = try freeLoopbackPort()
            let log = try testScratchDirectory("smtp").appendingPathComponent("smtp.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            let server = try ChildProcess.spawn(python, ["-u", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)"],
                                                stdout: .descriptor(handle.fileDescriptor), stderr: .descriptor(handle.fileDescriptor))
            defer { server.signal(SIGKILL); _ = try? server.wait(); try? handle.close() }
            let manager = AlertManager(settings: AlertSettings(smtpURL: "smtp://127.0.0.1:\(port)", mailFrom: "ccat@example.org",
                                                               mailTo: ["archive-admins@example.org"]), site: "cologne")
            _ = try await db.connection.execute("""
                INSERT INTO data_location_status (data_location_id, reachable, error_message) VALUES (\(fixture.operation.dataLocationID), false, 'stale NFS handle')
                """)
            let sent = try await eventually(within: .seconds(90), every: .milliseconds(500)) {
                _ = try await manager.cycle(db, logger: logger)
                let delivered = try await db.connection.query("SELECT 1 FROM alert_message WHERE channel = 'email' AND delivered_at IS NOT NULL")
                return !delivered.isEmpty
            }
            let smtpLog = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(sent, "the e-mail was not delivered: \(smtpLog)")
            let seen = try await eventually(within: .seconds(10)) {
                (try? String(contentsOf: log, encoding: .utf8))?.contains("stale NFS handle") == true
            }
            let text = try String(contentsOf: log, encoding: .utf8)
            #expect(seen, "the SMTP server did not print the message: \(text)")
            #expect(text.contains("Subject: [ccat cologne] ALERT: location ccat:primecam_raw_data was unreachable at its last check: stale NFS handle"))
            #expect(text.contains("To: archive-admins@example.org"))
            #expect(text.contains("fix: check the storage behind ccat:primecam_raw_data"))
            // ccat status lists the open alert with its fix.
            let status = try await runExecutable("ccat", ["status", "--database", fixture.database.conninfo])
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("location ccat:primecam_raw_data was unreachable at its last check: stale NFS handle")
                    && status.stdout.contains("    fix: check the storage behind ccat:primecam_raw_data"), "\(status.stdout)")
        }
    }

    static func startWebhookReceiver(python: String, port: Int, into file: URL) throws -> ChildProcess {
        let script = """
            import http.server, sys
            out = open(sys.argv[2], "ab")
            class Receiver(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    out.write(body.replace(b"\\n", b" ") + b"\\n"); out.flush()
                    self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
                def log_message(self, *args):
                    pass
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
            """
        return try ChildProcess.spawn(python, ["-c", script, String(port), file.path])
    }

    /// Each POST the receiver got, as JSON.
    static func lines(_ file: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// A TCP port of loopback nothing listens on now (the kernel's pick; it does not hand the same
/// one out again at once).
func freeLoopbackPort() throws -> Int {
    let socket = try ListeningSocket()
    socket.close()
    return socket.port
}
