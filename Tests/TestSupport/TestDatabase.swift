import Foundation
import Postgres
import Processes

/// Where the tests find PostgreSQL: `CCAT_TEST_DATABASE_URL`, else the repository's local cluster
/// (`scripts/local-postgres.sh start`, which `make test` runs). When `CI` is set a missing server is
/// a test failure, never a skip.
public enum TestEnvironment {
    public static let repositoryRoot: URL = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }()

    public static var isCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"] ?? ""
        return !value.isEmpty && value != "false" && value != "0"
    }

    /// Conninfo of a database on the test server with the right to create databases.
    public static let adminConninfo: String? = {
        if let url = ProcessInfo.processInfo.environment["CCAT_TEST_DATABASE_URL"], !url.isEmpty { return url }
        let pointer = repositoryRoot.appendingPathComponent(".ccat-dev/postgres/conninfo")
        guard let text = try? String(contentsOf: pointer, encoding: .utf8) else { return nil }
        let conninfo = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return conninfo.isEmpty ? nil : conninfo
    }()

    /// Run PostgreSQL tests: the server is configured, or we are in CI where its absence must fail.
    public static var runPostgresTests: Bool { adminConninfo != nil || isCI }

    /// `slurm.conf` of the test cluster: `$SLURM_CONF`, else the repository's single-node cluster
    /// (`scripts/local-slurm.sh start`, which `make test` runs where Slurm is installed).
    public static let slurmConf: String? = {
        if let conf = ProcessInfo.processInfo.environment["SLURM_CONF"], !conf.isEmpty { return conf }
        let local = repositoryRoot.appendingPathComponent(".ccat-dev/slurm/etc/slurm.conf").path
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }()

    /// Run Slurm tests: a test cluster is configured, or we are in CI where its absence must fail.
    public static var runSlurmTests: Bool { slurmConf != nil || isCI }

    /// Environment for Slurm client commands (sbatch, squeue, sacct) pointing at the test cluster.
    public static func slurmEnvironment() throws -> [String: String] {
        guard let slurmConf else {
            throw TestSetupError(description: "Slurm test cluster not found: run 'scripts/local-slurm.sh start' as root (make test does where Slurm is installed) or set SLURM_CONF")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_CONF"] = slurmConf
        return environment
    }

    /// Endpoint of the S3 test server: `CCAT_TEST_S3_ENDPOINT`, else the repository's moto_server
    /// (`scripts/local-s3.sh start`, which `make test` runs).
    public static let s3Endpoint: String? = {
        if let url = ProcessInfo.processInfo.environment["CCAT_TEST_S3_ENDPOINT"], !url.isEmpty { return url }
        let pointer = repositoryRoot.appendingPathComponent(".ccat-dev/s3/endpoint")
        guard let text = try? String(contentsOf: pointer, encoding: .utf8) else { return nil }
        let endpoint = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return endpoint.isEmpty ? nil : endpoint
    }()

    /// Run S3 tests: the test server is configured, or we are in CI where its absence must fail.
    public static var runS3Tests: Bool { s3Endpoint != nil || isCI }

    /// The S3 test server's endpoint, or a setup error saying how to start it.
    public static func requireS3Endpoint() throws -> String {
        guard let s3Endpoint else {
            throw TestSetupError(description: "S3 test server not found: run 'scripts/local-s3.sh start' (make test does) or set CCAT_TEST_S3_ENDPOINT")
        }
        return s3Endpoint
    }

    /// Keys for the S3 test server: `CCAT_TEST_S3_ACCESS_KEY_ID`/`CCAT_TEST_S3_SECRET_ACCESS_KEY`, else
    /// the test identity `scripts/local-s3.sh env` prints (moto_server accepts any keys).
    public static func s3Keys() -> (accessKeyID: String, secretAccessKey: String) {
        let environment = ProcessInfo.processInfo.environment
        return (environment["CCAT_TEST_S3_ACCESS_KEY_ID"] ?? "ccat-test", environment["CCAT_TEST_S3_SECRET_ACCESS_KEY"] ?? "ccat-test-secret")
    }

    /// A tool on PATH, else in the virtualenv `.ci/run` creates (`.ccat-dev/venv/bin`).
    public static func tool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = path.split(separator: ":").map { "\($0)/\(name)" }
            + [repositoryRoot.appendingPathComponent(".ccat-dev/venv/bin/\(name)").path]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A Python that can import botocore (the one next to moto_server), to compare signatures.
    public static func botocorePython() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = path.split(separator: ":").map { "\($0)/python3" }
            + [repositoryRoot.appendingPathComponent(".ccat-dev/venv/bin/python3").path]
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            if let result = try? runProcess(candidate, ["-c", "import botocore"]), result.status == 0 { return candidate }
        }
        throw TestSetupError(description: "no python3 with botocore found: pip install 'moto[server]' (.ci/run installs it into .ccat-dev/venv)")
    }

    /// A Python that imports `module` (the system's, else the virtualenv's that .ci/run fills).
    public static func python(importing module: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates = [repositoryRoot.appendingPathComponent(".ccat-dev/venv/bin/python3").path] + path.split(separator: ":").map { "\($0)/python3" }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            if let result = try? runProcess(candidate, ["-c", "import \(module)"]), result.status == 0 { return candidate }
        }
        throw TestSetupError(description: "no python3 that imports \(module): scripts/install-deps.sh test installs it into .ccat-dev/venv")
    }

    /// Debian's headless-capable Chromium.
    public static func chromium() throws -> String {
        guard let path = tool("chromium") ?? tool("chromium-browser") else {
            throw TestSetupError(description: "chromium not found: apt-get install chromium (scripts/install-deps.sh test)")
        }
        return path
    }

    /// Where tests leave files for people to look at (screenshots): .build/test-artifacts.
    public static var artifactDirectory: URL {
        let directory = repositoryRoot.appendingPathComponent(".build/test-artifacts")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// aws-cli against the S3 test server: its path and an environment with the test keys.
    public static func awsCLI() throws -> (path: String, environment: [String: String]) {
        let keys = s3Keys()
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_ACCESS_KEY_ID"] = keys.accessKeyID
        environment["AWS_SECRET_ACCESS_KEY"] = keys.secretAccessKey
        environment["AWS_DEFAULT_REGION"] = "us-east-1"
        guard let path = tool("aws") else {
            throw TestSetupError(description: "aws-cli not found: pip install awscli (.ci/run installs it into .ccat-dev/venv)")
        }
        return (path, environment)
    }

    /// munged's socket for staging tests: `CCAT_TEST_MUNGE_SOCKET`, else the repository's
    /// `scripts/local-munge.sh start` (which `make test` runs). `instance` "foreign" is a second
    /// munged with another key (`scripts/local-munge.sh start foreign`).
    public static func mungeSocket(instance: String = "default") -> String? {
        if instance == "default", let socket = ProcessInfo.processInfo.environment["CCAT_TEST_MUNGE_SOCKET"], !socket.isEmpty { return socket }
        let socket = repositoryRoot.appendingPathComponent(".ccat-dev/munge/\(instance)/munge.socket").path
        var info = stat()
        return stat(socket, &info) == 0 && (UInt32(info.st_mode) & 0o170000) == 0o140000 ? socket : nil
    }

    /// Run munge tests: munged is there, or we are in CI where its absence must fail.
    public static var runMungeTests: Bool { mungeSocket() != nil || isCI }

    public static func requireMungeSocket(instance: String = "default") throws -> String {
        guard let socket = mungeSocket(instance: instance) else {
            throw TestSetupError(description: "munged (\(instance)) not found: run 'scripts/local-munge.sh start\(instance == "default" ? "" : " " + instance)' (make test does)")
        }
        return socket
    }

    /// The ssh client configuration with the alias `ccat-test-remote` (`scripts/local-sshd.sh start`,
    /// which `make test` runs as root), or `CCAT_TEST_SSH_CONFIG`.
    public static let sshConfig: String? = {
        if let config = ProcessInfo.processInfo.environment["CCAT_TEST_SSH_CONFIG"], !config.isEmpty { return config }
        let local = repositoryRoot.appendingPathComponent(".ccat-dev/sshd/ssh_config").path
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }()

    /// Run ssh tests: the loopback sshd is configured, or we are in CI where its absence must fail.
    public static var runSSHTests: Bool { sshConfig != nil || isCI }

    public static func requireSSHConfig() throws -> String {
        guard let sshConfig else {
            throw TestSetupError(description: "loopback sshd not found: run 'scripts/local-sshd.sh start' as root (make test does) or set CCAT_TEST_SSH_CONFIG")
        }
        return sshConfig
    }

    /// The hosts of `scripts/local-sites.sh` (network namespaces; `make test` builds them as root).
    public static let sitesDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["CCAT_DEV_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent("sites")
        }
        return repositoryRoot.appendingPathComponent(".ccat-dev/sites")
    }()

    static var sitesExist: Bool {
        FileManager.default.fileExists(atPath: sitesDirectory.appendingPathComponent("ssh_config").path)
            && FileManager.default.fileExists(atPath: "/run/netns/ccat-cologne")
    }

    /// Run the tests across hosts: they are built, or we are in CI where their absence must fail.
    public static var runSitesTests: Bool { sitesExist || isCI }

    public static func requireSites() throws -> URL {
        guard sitesExist else {
            throw TestSetupError(description: "the hosts of scripts/local-sites.sh are not there: run 'scripts/local-sites.sh start' as root (make test does)")
        }
        return sitesDirectory
    }

    /// Runs `body` while no other test uses the hosts: tests that change the links (an outage, a
    /// rate cap) take turns, across suites and test processes (a lock file in the hosts' directory).
    public static func withSitesToThemselves<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let sites = try requireSites()
        let fd = open(sites.appendingPathComponent("tests.lock").path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestSetupError(description: "cannot open the hosts' test lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = try await offPool { flock(fd, LOCK_EX) }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }

    /// Directory of the built executables (`ccat`, `ccat-runner`).
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["CCAT_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return repositoryRoot.appendingPathComponent(".build/debug")
    }
}

/// Every scratch directory of this test process lives under one root that is removed when the
/// process exits, so failed or killed tests leave nothing behind in /tmp run after run.
nonisolated(unsafe) private var scratchRootPath: String?
private let scratchRoot: URL = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    chmod(root.path, 0o755)
    scratchRootPath = root.path
    atexit {
        if let path = scratchRootPath { try? FileManager.default.removeItem(atPath: path) }
    }
    return root
}()

/// A fresh directory `<label>-<uuid>` for one test (removed with the others at exit).
public func testScratchDirectory(_ label: String) throws -> URL {
    let url = scratchRoot.appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Flips one bit of one byte of a file in place (a damaged copy).
public func flipByte(_ path: String, at offset: UInt64) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    guard let byte = try handle.read(upToCount: 1)?.first else {
        throw TestSetupError(description: "\(path) has no byte at offset \(offset)")
    }
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data([byte ^ 0x01]))
}

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A database of its own for one test, dropped afterwards, so tests run in parallel and leave nothing.
public struct TestDatabase: Sendable {
    public let name: String
    public let conninfo: String

    public static func create() async throws -> TestDatabase {
        guard let admin = TestEnvironment.adminConninfo else {
            throw TestSetupError(description: "PostgreSQL test server not found: run 'scripts/local-postgres.sh start' (make test does) or set CCAT_TEST_DATABASE_URL")
        }
        let name = "ccat_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: admin, applicationName: "ccat-tests"))
        try await connection.execute("CREATE DATABASE \(identifier: name)")
        await connection.close()
        return TestDatabase(name: name, conninfo: try replacingDatabase(in: admin, with: name))
    }

    public func connect(applicationName: String = "ccat-tests") async throws -> PostgresConnection {
        try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: applicationName))
    }

    public func drop() async throws {
        guard let admin = TestEnvironment.adminConninfo else { return }
        let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: admin, applicationName: "ccat-tests"))
        try await connection.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
        await connection.close()
    }

    static func replacingDatabase(in conninfo: String, with database: String) throws -> String {
        let options = try PostgresConnInfo.parse(conninfo).filter { $0.keyword != "dbname" }
        return (options.map { "\($0.keyword)=\(PostgresConnInfo.quote($0.value))" } + ["dbname=\(database)"]).joined(separator: " ")
    }
}

/// Runs `body` with a fresh database and a connection to it; drops the database afterwards.
public func withTestDatabase(_ body: (TestDatabase, PostgresConnection) async throws -> Void) async throws {
    let database = try await TestDatabase.create()
    do {
        let connection = try await database.connect()
        do {
            try await body(database, connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    } catch {
        try? await database.drop()
        throw error
    }
    try await database.drop()
}

/// Runs a built executable (from `TestEnvironment.binDirectory`) with the database settings of the
/// test process removed, so each test says exactly which database the command sees.
public func runExecutable(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    var env = ProcessInfo.processInfo.environment
    for key in ["CCAT_DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "CCAT_CONFIG"] {
        env.removeValue(forKey: key)
    }
    env.merge(environment) { $1 }
    return try runProcess(TestEnvironment.binDirectory.appendingPathComponent(name).path, arguments, environment: env)
}

/// Asks `condition` every `interval` until it holds or `limit` passed; whether it held. For states
/// the system reaches a moment later: the wait ends as soon as the condition holds.
public func eventually(within limit: Duration, every interval: Duration = .milliseconds(100),
                       _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: interval)
    }
}

/// Runs blocking `work` on a Dispatch thread, so that the wait does not hold one of the few
/// threads of Swift's cooperative pool that every other test needs.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// `runExecutable` for async tests, off the pool (Swift picks this one wherever `await` can be written).
public func runExecutable(_ name: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offPool { try runExecutable(name, arguments, environment: environment) }
}

/// `runProcess` off the pool: for programs that run for minutes (the demo).
public func runLongProcess(_ executable: String, _ arguments: [String], environment: [String: String]) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offPool { try runProcess(executable, arguments, environment: environment) }
}

/// Runs a program; returns exit status, standard output and standard error.
public func runProcess(_ executable: String, _ arguments: [String], currentDirectory: String? = nil,
                       environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try ChildProcess.run(executable, arguments, environment: environment, directory: currentDirectory)
    return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
}
