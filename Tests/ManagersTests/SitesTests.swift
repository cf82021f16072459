import Foundation
import Processes
import Testing
import TestSupport

/// The pipeline deployed as the observatory runs it (`make demo SITES=1`): the telescope, Cologne,
/// US and login hosts are network namespaces (`scripts/local-sites.sh`), the database is reached
/// over TLS only, each client logs in with its own role, bundles cross between hosts by rsync over
/// ssh, and no job secret shows where it must not.
@Suite("Sites on hosts of their own", .serialized, .enabled(if: TestEnvironment.runSitesTests, "requires root and iproute2: run 'make test' as root"))
struct SitesTests {
    static let database = "ccat_e2e_sites"
    static let subnet = "10.77.0."

    @Test func pipelineAcrossHostsWithTLSAndOwnRoles() async throws {
        try await TestEnvironment.withSitesToThemselves { try await pipelineAcrossHosts() }
    }

    func pipelineAcrossHosts() async throws {
        let sites = try TestEnvironment.requireSites()
        let directory = try testScratchDirectory("sites")
        // The logs the hosts keep: what this run adds is read afterwards.
        let databaseLog = try Self.serverLog(sites: sites)
        let sshdLogs = ["cologne", "us"].map { sites.appendingPathComponent("hosts/\($0)/sshd/sshd.log") }
        let before = (databaseLog: Self.size(databaseLog), sshd: sshdLogs.map(Self.size))

        // What ps shows while the demo runs: a snapshot every 0.3 s into a file the secret scan reads.
        let psFile = directory.appendingPathComponent("ps-during-run.txt")
        let watcher = try ChildProcess.spawn("/bin/bash", ["-c", "while :; do ps -eww -o pid=,user=,args= >> \"$0\"; sleep 0.3; done", psFile.path])
        var environment = ProcessInfo.processInfo.environment
        environment.merge(["DEMO_SITES": "1", "DEMO_DIR": directory.appendingPathComponent("demo").path, "DEMO_DATABASE": Self.database,
                           "DEMO_OBSERVATIONS": "6", "DEMO_FILES": "3", "DEMO_TIMEOUT": "600", "SCHEDULER": "local",
                           "DEMO_OUTAGE": "30"]) { $1 }
        let run = try await runLongProcess("/bin/bash", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/demo.sh").path,
                                                          TestEnvironment.binDirectory.path], environment: environment)
        _ = await watcher.terminate(grace: .seconds(5))
        // The demo fails unless every package reached both archives, the SOURCE and BUFFER copies
        // were deleted, and the scientist on the login host staged an observation whose files match
        // the instrument's checksums and released it.
        #expect(run.status == 0, "demo failed:\n\(run.stdout.suffix(3000))\n\(run.stderr.suffix(3000))")
        #expect(run.stdout.contains("staged files match the instrument's checksums") && run.stdout.contains("released: "), "\(run.stdout.suffix(2000))")
        let conninfo = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("database: ") }).dropFirst("database: ".count)

        // The telescope's link was down for 30 s while the pipeline ran: the DAQ could not register
        // the two observations written meanwhile and said why, registered them once the link was
        // back, and they were archived like the rest with nothing sent to intervention.
        #expect(run.stdout.contains("registration failed while the link was down: Error: cannot connect to PostgreSQL"), "\(run.stdout.suffix(2000))")
        #expect(run.stdout.contains("registered after the outage: ccat:instrument_data: 24 files, 6 newly registered"), "\(run.stdout.suffix(2000))")
        let counts = try await offPool {
            try runProcess("/usr/bin/psql", [String(conninfo), "-Atc", """
                SELECT (SELECT count(*) FROM raw_data_file) || ' ' || (SELECT count(*) FROM operation WHERE state = 'intervention')
                       || ' ' || (SELECT coalesce(sum(attempts), 0) FROM operation)
                """])
        }
        let figures = counts.stdout.split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(figures.count == 3 && figures[0] == 24 && figures[1] == 0, "files, operations in intervention, attempts spent: \(counts.stdout) \(counts.stderr)")

        // The link optimizer kept the telescope's links inside the topology's bounds (1-4 jobs)
        // and recorded its decisions, which 'ccat status' shows.
        let decisions = try await offPool {
            try runProcess("/usr/bin/psql", [String(conninfo), "-Atc", """
                SELECT d.short_name || ' ' || min(x.new_limit) || ' ' || max(x.new_limit) || ' ' || count(*)
                FROM link_concurrency_decision x JOIN site o ON o.id = x.origin_site_id JOIN site d ON d.id = x.destination_site_id
                WHERE o.short_name = 'ccat' GROUP BY d.short_name ORDER BY 1
                """])
        }
        let perLink = decisions.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(perLink.map { $0.first ?? "" } == ["cologne", "us"], "decisions: \(decisions.stdout) \(decisions.stderr)")
        #expect(perLink.allSatisfy { $0.count == 4 && Int($0[1])! >= 1 && Int($0[2])! <= 4 && Int($0[3])! >= 1 }, "\(perLink)")
        let status = try await runExecutable("ccat", ["status"], environment: ["CCAT_DATABASE_URL": String(conninfo)])
        #expect(status.stdout.contains("ccat -> cologne") && status.stdout.contains("1-4 "), "\(status.stdout.suffix(1500))")
        // ... and /metrics (the demo's last scrape).
        let samples = try PrometheusSample.parse(try String(contentsOf: directory.appendingPathComponent("demo/metrics.txt"), encoding: .utf8))
        let limit = samples.value("ccat_link_transfer_jobs_limit", ["origin_site": "ccat", "destination_site": "cologne"])
        #expect(limit.map { (1...4).contains($0) } == true, "ccat_link_transfer_jobs_limit for ccat -> cologne: \(String(describing: limit))")

        // Each site's jobs ran on its host, with the other sites' storage out of sight (the job
        // fails if the cover cannot be mounted), so whatever reached another site crossed the network.
        let jobs = directory.appendingPathComponent("demo/state/jobs")
        for (queue, host) in [("ccat_buffer_data_transfer", "telescope (\(Self.subnet)10/24)"), ("cologne_buffer_data_transfer", "cologne (\(Self.subnet)20/24)"),
                              ("us_buffer_data_transfer_unpacking", "us (\(Self.subnet)30/24)")] {
            let errors = try FileManager.default.contentsOfDirectory(atPath: jobs.appendingPathComponent(queue).path).map {
                try String(contentsOf: jobs.appendingPathComponent("\(queue)/\($0)/job.err"), encoding: .utf8)
            }
            #expect(!errors.isEmpty && errors.allSatisfy { $0.contains("job on host \(host); other sites' storage covered:") }, "\(queue): \(errors.first ?? "no job")")
        }

        // Who connected from where, as the database server saw it: each network client over TLS,
        // under its own role, from its own host.
        let logins = try Self.logins(in: databaseLog, from: before.databaseLog, database: Self.database)
        func hosts(of role: String, program: String? = nil) -> Set<String> {
            Set(logins.filter { $0.role == role && (program.map($0.application.hasPrefix) ?? true) }.map(\.host))
        }
        #expect(!logins.isEmpty, "no network logins recorded in \(databaseLog.path)")
        let plain = logins.filter { !$0.tls }
        #expect(plain.isEmpty, "network logins without TLS: \(plain.prefix(3))")
        #expect(hosts(of: "ccat_demo_daemon") == ["\(Self.subnet)20"], "\(hosts(of: "ccat_demo_daemon"))")
        #expect(hosts(of: "ccat_demo_daq") == ["\(Self.subnet)10"], "the DAQ hook logs in from the telescope only")
        // Runners work on the telescope (packaging, transfers out, deletion), in Cologne and in the US.
        #expect(hosts(of: "ccat_demo_runner") == ["\(Self.subnet)10", "\(Self.subnet)20", "\(Self.subnet)30"], "\(hosts(of: "ccat_demo_runner"))")
        let me = String(cString: getpwuid(geteuid()).pointee.pw_name)
        #expect(hosts(of: me, program: "ccat stage") == ["\(Self.subnet)40"], "the scientist stages from the login host")
        #expect(logins.allSatisfy { $0.role != "ccat" }, "the owner never logs in over the network")

        // Bundles crossed to Cologne and the US over ssh: from the telescope host to both, and
        // between the archive sites, into each host's own sshd.
        for (index, log) in sshdLogs.enumerated() {
            let text = try Self.tail(of: log, from: before.sshd[index])
            #expect(text.contains("Accepted publickey for \(me) from \(Self.subnet)10 "), "\(log.path): \(text.suffix(600))")
        }

        // No job secret in job scripts, logs, `ccat jobs show`, or what ps showed during the run.
        let owner = ["CCAT_DATABASE_URL": String(conninfo)]
        let ids = try await runExecutable("ccat", ["jobs", "list", "--json", "--limit", "100000"], environment: owner)
        #expect(ids.status == 0, "\(ids.stderr)")
        let listed = try JSONSerialization.jsonObject(with: Data(ids.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(!listed.isEmpty)
        var shown = ""
        for job in listed {
            let id = try #require((job["job"] as? [String: Any])?["id"] as? Int)
            let show = try await runExecutable("ccat", ["jobs", "show", String(id)], environment: owner)
            shown += show.stdout + show.stderr
        }
        try shown.write(to: directory.appendingPathComponent("jobs-show.txt"), atomically: true, encoding: .utf8)
        let secretDigests = try await Self.secretDigests(conninfo: String(conninfo))
        #expect(secretDigests.count == listed.count, "every batch job had a secret of its own")
        let leaked = try EndToEndTests.filesHoldingSecrets(under: directory, digests: secretDigests)
        #expect(leaked.isEmpty, "job secrets found in \(leaked)")
        // The snapshots did see the runners at work (their command lines hold no secret).
        let snapshots = try String(contentsOf: psFile, encoding: .utf8)
        #expect(snapshots.contains("ccat-runner run --batch-job "),
                "ps never showed a runner during the run")

        try await refusalsWithoutTheRightCertificates(sites: sites)
    }

    /// A client that checks the server's certificate refuses a server it cannot verify, and says
    /// what to do; the server refuses clients without TLS or with another role's certificate. (Run
    /// after the demo, which made the roles.)
    func refusalsWithoutTheRightCertificates(sites: URL) async throws {
        let tls = sites.appendingPathComponent("tls")
        let scratch = try testScratchDirectory("sites-tls")
        // A CA of nobody's: the server's certificate does not chain to it.
        let otherCA = scratch.appendingPathComponent("other-ca.crt").path
        let made = try runProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA",
                                                       "-keyout", scratch.appendingPathComponent("other-ca.key").path, "-out", otherCA])
        #expect(made.status == 0, "\(made.stderr)")
        let cert = try runProcess("/bin/bash", [TestEnvironment.repositoryRoot.appendingPathComponent("scripts/local-sites.sh").path, "client-cert", "ccat_demo_daq"])
        #expect(cert.status == 0, "\(cert.stderr)")
        let daqCertificate = cert.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let ca = tls.appendingPathComponent("ca.crt").path
        let server = "host=\(Self.subnet)20 port=5432 dbname=postgres"
        let cases: [(conninfo: String, says: [String], hint: String)] = [
            ("\(server) sslmode=verify-full sslrootcert=\(otherCA) user=ccat_demo_daq \(daqCertificate)",
             ["certificate verify failed"], "sslrootcert"),
            ("host=db.us.ccat hostaddr=\(Self.subnet)20 port=5432 dbname=postgres sslmode=verify-full sslrootcert=\(ca) user=ccat_demo_daq \(daqCertificate)",
             ["does not match host name \"db.us.ccat\""], "subjectAltName"),
            ("\(server) sslmode=disable user=ccat_demo_daq", ["no encryption"], "sslmode=verify-full"),
            // The DAQ's certificate does not log in as the runner.
            ("\(server) sslmode=verify-full sslrootcert=\(ca) user=ccat_demo_runner \(daqCertificate)",
             ["certificate authentication failed for user \"ccat_demo_runner\""], "common name"),
        ]
        for attempt in cases {
            let result = try await offPool {
                try runProcess("/usr/bin/env", ["ip", "netns", "exec", "ccat-login", TestEnvironment.binDirectory.appendingPathComponent("ccat").path,
                                                "status", "--database", attempt.conninfo])
            }
            #expect(result.status != 0, "\(attempt.conninfo) was accepted")
            for phrase in attempt.says + [attempt.hint] {
                #expect(result.stderr.contains(phrase), "\(attempt.conninfo): \(result.stderr)")
            }
        }
        // The right CA and the right name work (the login itself is then refused by the role's
        // rights, not by TLS: the DAQ may not read the status).
        let good = try await offPool {
            try runProcess("/usr/bin/env", ["ip", "netns", "exec", "ccat-login", "/usr/bin/psql",
                                            "\(server) sslmode=verify-full sslrootcert=\(ca) user=ccat_demo_daq \(daqCertificate)",
                                            "-Atc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
        }
        #expect(good.status == 0 && good.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "t", "\(good.stderr)")
    }

    struct Login: CustomStringConvertible {
        var host: String
        var role: String
        var application: String
        var tls: Bool
        var description: String { "\(role)@\(host) (\(application))\(tls ? "" : " without TLS")" }
    }

    /// Network logins to `database` in the server's log after byte `offset` (log_connections: a
    /// "connection received: host=..." line, then "connection authorized" by the same backend).
    static func logins(in log: URL, from offset: Int, database: String) throws -> [Login] {
        let pid = try NSRegularExpression(pattern: "\\[(\\d+)\\] LOG:  connection (received|authorized): (.*)$", options: .anchorsMatchLines)
        let text = try tail(of: log, from: offset)
        var hostOf: [String: String] = [:]
        var logins: [Login] = []
        for match in pid.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let backend = Range(match.range(at: 1), in: text).map({ String(text[$0]) }),
                  let kind = Range(match.range(at: 2), in: text).map({ String(text[$0]) }),
                  let rest = Range(match.range(at: 3), in: text).map({ String(text[$0]) }) else { continue }
            func field(_ name: String) -> String? {
                guard let start = rest.range(of: "\(name)=") else { return nil }
                let value = rest[start.upperBound...]
                let end = name == "application_name" ? (value.range(of: " SSL enabled")?.lowerBound ?? value.endIndex) : (value.firstIndex(of: " ") ?? value.endIndex)
                return String(value[..<end])
            }
            if kind == "received" {
                hostOf[backend] = field("host")
            } else if let host = hostOf.removeValue(forKey: backend), host.hasPrefix(subnet), field("database") == database {
                logins.append(Login(host: host, role: field("user") ?? "?", application: field("application_name") ?? "", tls: rest.contains("SSL enabled")))
            }
        }
        return logins
    }

    static func secretDigests(conninfo: String) async throws -> Set<String> {
        let result = try await offPool { try runProcess("/usr/bin/psql", [conninfo, "-Atc", "SELECT runner_secret_digest FROM batch_job"]) }
        #expect(result.status == 0, "\(result.stderr)")
        return Set(result.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty })
    }

    static func serverLog(sites: URL) throws -> URL {
        let root = try String(contentsOf: sites.appendingPathComponent("postgres/server-root"), encoding: .utf8)
        return URL(fileURLWithPath: root.trimmingCharacters(in: .whitespacesAndNewlines)).appendingPathComponent("server.log")
    }

    static func size(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    static func tail(of url: URL, from offset: Int) throws -> String {
        let data = try Data(contentsOf: url)
        return String(decoding: data.dropFirst(min(offset, data.count)), as: UTF8.self)
    }
}
