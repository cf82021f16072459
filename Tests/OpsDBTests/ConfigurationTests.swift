import CCatConfig
import Foundation
import Testing
import TestSupport

@Suite("Where the database is found (pure logic)")
struct ConfigurationTests {
    func temporaryDirectory() throws -> URL {
        try testScratchDirectory("config")
    }

    @Test func precedenceOptionEnvironmentLibpqConfigLocal() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let nested = dir.appendingPathComponent("a/b")
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".ccat-dev/postgres"), withIntermediateDirectories: true)
        try "host=/tmp/local dbname=ccat\n".write(to: dir.appendingPathComponent(".ccat-dev/postgres/conninfo"), atomically: true, encoding: .utf8)
        let config = CCatConfiguration(path: "/etc/ccat/ccat.yaml", database: "service=ops")
        let env = ["CCAT_DATABASE_URL": "postgresql://env/db", "PGHOST": "pghost", "HOME": dir.path]

        func locate(_ option: String?, _ config: CCatConfiguration?, _ env: [String: String]) throws -> DatabaseLocation {
            try DatabaseLocator(option: option, configuration: config, environment: env, currentDirectory: nested.path).locate()
        }
        #expect(try locate("dbname=cli", config, env) == DatabaseLocation(conninfo: "dbname=cli", source: .commandLine))
        #expect(try locate(nil, config, env).source == .environment(variable: "CCAT_DATABASE_URL"))
        var noURL = env
        noURL["CCAT_DATABASE_URL"] = nil
        #expect(try locate(nil, config, noURL) == DatabaseLocation(conninfo: "", source: .libpqEnvironment(variables: ["PGHOST"])))
        let onlyHome = ["HOME": dir.path]
        #expect(try locate(nil, config, onlyHome) == DatabaseLocation(conninfo: "service=ops", source: .configFile(path: "/etc/ccat/ccat.yaml")))
        let local = try locate(nil, nil, onlyHome)
        #expect(local.conninfo == "host=/tmp/local dbname=ccat")
        #expect(local.source == .localCluster(pointer: dir.appendingPathComponent(".ccat-dev/postgres/conninfo").path))
    }

    @Test func nothingConfiguredSaysWhatToDo() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: DatabaseNotConfigured.self) {
            try DatabaseLocator(option: nil, configuration: nil, environment: ["HOME": dir.path], currentDirectory: dir.path).locate()
        }
        #expect(error?.description.contains("make db") == true)
        #expect(error?.description.contains("CCAT_DATABASE_URL") == true)
    }

    @Test func configFileErrorsNameFileAndLine() throws {
        #expect(try CCatConfiguration.parse("database: host=db dbname=ops\n", path: "c.yaml").database == "host=db dbname=ops")
        let unknown = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("# comment\ndatabse: x\n", path: "c.yaml") }
        #expect(unknown?.description.hasPrefix("c.yaml:2: unknown key 'databse' (known: alerts, daemon, database, http, jobscript_overrides,") == true)
        let scheduler = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("scheduler: pbs\n", path: "c.yaml") }
        #expect(scheduler?.description == "c.yaml:1: 'scheduler' must be 'local' or 'slurm', not 'pbs'")
        let relative = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("state_directory: state\n", path: "c.yaml") }
        #expect(relative?.description == "c.yaml:1: 'state_directory' must be an absolute path")
        #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("local_concurrency: 0\n", path: "c.yaml") }
        #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("slurm_accounting: maybe\n", path: "c.yaml") }
        let wrongType = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("database:\n  - a\n", path: "c.yaml") }
        #expect(wrongType?.line == 2)
        let broken = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("database: [unclosed\n", path: "c.yaml") }
        #expect(broken?.description.hasPrefix("c.yaml:") == true)
        let missing = #expect(throws: ConfigurationError.self) { try CCatConfiguration.load(explicitPath: "/nonexistent/ccat.yaml") }
        #expect(missing?.description == "/nonexistent/ccat.yaml: file not found")
    }

    @Test func exampleConfigurationParses() throws {
        let path = TestEnvironment.repositoryRoot.appendingPathComponent("etc/ccat.example.yaml").path
        let configuration = try CCatConfiguration.parse(contentsOf: path)
        #expect(configuration.database?.contains("dbname=ccat_ops") == true)
        #expect(configuration.scheduler == "slurm")
        #expect(configuration.slurmAccounting == true)
        #expect(configuration.stateDirectory == "/shared/ccat/state")
        #expect(configuration.localConcurrency == 2)
        #expect(configuration.runner == "/opt/ccat/bin/ccat-runner")
        #expect(configuration.jobscriptOverrides == "/etc/ccat/jobscripts")
        #expect(configuration.mungeSocket == "/run/munge/munge.socket.2" && configuration.stagingLocation == "ramses_processing")
        #expect(configuration.daemon["bundle_max_bytes"] == 107_374_182_400 && configuration.daemon.count == CCatConfiguration.daemonKeys.count)
        #expect(configuration.http == "127.0.0.1:9464")
        #expect(configuration.runnerDatabase?.contains("user=ccat_runner_cologne") == true)
        #expect(configuration.alerts.channels == ["webhook", "email"] && configuration.alerts.mailTo == ["archive-admins@example.org"])
    }

    @Test func daemonSettingsAreCheckedByName() throws {
        let configuration = try CCatConfiguration.parse("daemon:\n  bundle_max_bytes: 2000000\n  interval: 2.5\n", path: "ccat.yaml")
        #expect(configuration.daemon == ["bundle_max_bytes": 2_000_000, "interval": 2.5])
        let misspelt = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("daemon:\n  bundle_max_byte: 1\n", path: "ccat.yaml") }
        #expect(misspelt?.message.contains("unknown daemon setting 'bundle_max_byte'") == true)
        let negative = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("daemon:\n  retention: -5\n", path: "ccat.yaml") }
        #expect(negative?.message.contains("must be a number of seconds") == true)
    }

    /// Each daemon setting is written once (DaemonSettings.keys): the file key, the option of
    /// `ccat daemon` with its help and default, and the checks, which say the name as given.
    @Test func daemonSettingsHaveOneDefinition() async throws {
        var settings = DaemonSettings()
        try settings.set("staging_job_max_bytes", to: 1_000)
        #expect(settings.stagingJobMaxBytes == 1_000)
        let zero = #expect(throws: DaemonSettings.Refusal.self) { try settings.set("interval", to: 0, shownAs: "--interval") }
        #expect(zero?.description == "daemon setting '--interval' must be a number of seconds, more than 0")
        #expect(throws: DaemonSettings.Refusal.self) { try settings.set("interval", to: .nan) }
        #expect(DaemonSettings.key("staging_retention").help.hasSuffix("(default 14 days)."))
        #expect(DaemonSettings.key("bundle_max_bytes").help.hasSuffix("(default 100 GiB)."))

        // The file: a value the setting cannot take is refused at its line.
        let refused = #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("daemon:\n  interval: 5\n  poll_interval: 0\n", path: "ccat.yaml") }
        #expect(refused?.description.hasPrefix("ccat.yaml:3:") == true, "\(String(describing: refused))")
        #expect(try CCatConfiguration.parse("daemon:\n  interval: 5\n", path: "ccat.yaml").daemonSettings.interval == 5)
        // The outage grace may be 0 (every outage-like failure counts at once), not negative.
        #expect(try CCatConfiguration.parse("daemon:\n  outage_grace: 0\n", path: "ccat.yaml").daemonSettings.outageGrace == 0)
        #expect(throws: ConfigurationError.self) { try CCatConfiguration.parse("daemon:\n  outage_grace: -1\n", path: "ccat.yaml") }

        // The options: every setting is one, with its default in the help.
        let help = try await runExecutable("ccat", ["daemon", "--help"])
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for key in DaemonSettings.keys {
            #expect(text.contains(key.option + " <"), "\(key.option)")
            #expect(text.contains(key.help.split(separator: "(").last.map { "(" + $0 } ?? ""), "\(key.help)")
        }
    }
}
