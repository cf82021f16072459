import ArgumentParser
import CCatCLI
import CCatConfig
import Foundation
import Logging
import OpsDB
import Runner
import Storage

/// Options shared by `run` and `exec`.
struct LeaseOptions: ParsableArguments {
    @Option(name: .long, help: "Seconds a claim stays valid without renewal; the daemon fails the operation over after that.")
    var leaseSeconds: Double = 180

    @Option(name: .long, help: "Seconds between lease renewals.")
    var heartbeatSeconds: Double = 30

    @Option(name: .long, help: "S3 uploads larger than this many MiB go in parts of this size (at least 5).")
    var s3PartSizeMib: Int = 16

    @Option(name: .long, help: "S3 parts sent at the same time.")
    var s3ParallelParts: Int = 8

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Ask S3 to check and keep a SHA-256 of every object and part (S3's additional checksums); --no-s3-checksums for servers without them.")
    var s3Checksums = true

    var s3: S3Settings { S3Settings(partSize: s3PartSizeMib << 20, parallelParts: s3ParallelParts, checksums: s3Checksums) }

    func validate() throws {
        guard s3PartSizeMib >= 5, s3PartSizeMib <= 5120, s3ParallelParts >= 1, s3ParallelParts <= 64 else {
            throw ValidationError("--s3-part-size-mib must be 5 to 5120 (S3's part limits) and --s3-parallel-parts 1 to 64")
        }
        guard leaseSeconds > 0, heartbeatSeconds > 0, heartbeatSeconds < leaseSeconds else {
            throw ValidationError("--heartbeat-seconds must be positive and shorter than --lease-seconds")
        }
    }
}

/// Connects twice (work and heartbeat), checks the schema, and runs `body` with a runner.
func withRunner(_ options: GlobalOptions, lease: LeaseOptions, owner: String, logDirectory: String,
                _ body: (OperationRunner) async throws -> RunSummary) async throws -> RunSummary {
    let logger = options.makeLogger(label: "ccat.runner")
    let stop = StopSignal()
    stop.installHandlers()
    let secret = try jobSecretSettings()
    // The same outage grace as the daemon's (`outage_grace` under `daemon:` in the shared file).
    let retryPolicy = RetryPolicy(outageGraceSeconds: (try options.loadConfiguration())?.daemonSettings.outageGrace ?? DaemonSettings().outageGrace)
    // Patient connections: a database restart or failover while a job runs costs a wait, not the job.
    return try await options.withDatabase(applicationName: "ccat-runner", logger: logger, patient: true, sessionSettings: secret) { connection, _ in
        try await requireCurrentSchema(connection)
        return try await options.withDatabase(applicationName: "ccat-runner heartbeat", logger: logger, patient: true,
                                              sessionSettings: secret) { heartbeat, _ in
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            let runner = OperationRunner(db: OpsDB(connection), heartbeatDB: OpsDB(heartbeat), owner: owner,
                                         settings: RunnerSettings(leaseSeconds: lease.leaseSeconds, heartbeatSeconds: lease.heartbeatSeconds,
                                                                  retryPolicy: retryPolicy, logDirectory: logDirectory, s3: lease.s3),
                                         stop: stop, logger: logger)
            return try await body(runner)
        }
    }
}

/// The job's secret (`CCAT_JOB_SECRET`, put in the job's environment by the daemon) as the session
/// setting a runner role presents; taken out of this process's environment first, so that no
/// program the runner starts (rsync, ssh, bbcp) inherits it.
func jobSecretSettings() throws -> [String: String] {
    guard let secret = ProcessInfo.processInfo.environment[JobSecret.variable] else { return [:] }
    unsetenv(JobSecret.variable)
    guard JobSecret.isWellFormed(secret) else {
        throw ValidationError("\(JobSecret.variable) is not a secret made by 'ccat daemon' (64 hex digits); unset it to run without one")
    }
    return [JobSecret.setting: secret]
}

func printSummary(_ summary: RunSummary, json: Bool) throws {
    if json {
        try printJSON(summary)
    } else {
        print("succeeded: \(summary.succeeded.count)  failed: \(summary.failed.count)  released: \(summary.released.count + summary.returnedUnstarted)  lease lost: \(summary.leaseLost.count)")
        if let reason = summary.stopReason { print("stopped early: \(reason)") }
        if !summary.failed.isEmpty { print("failed operations: \(summary.failed.map(String.init).joined(separator: ", ")) (see 'ccat jobs show' or the operation logs)") }
    }
    // A failed operation makes the job fail in the scheduler's accounting too, where admins look.
    if !summary.failed.isEmpty { throw ExitCode(1) }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the operations of a batch job (what job scripts call).",
        discussion: """
            Claims the job's operations one at a time, renews each claim (lease) while working, and \
            reports every result to the ops database. SIGUSR2 (the walltime warning) or SIGTERM make it \
            abandon the current operation safely, give back the unstarted ones, and exit.
            """)

    @OptionGroup var options: GlobalOptions
    @OptionGroup var lease: LeaseOptions

    @Option(name: .long, help: "The batch job id (CCAT_BATCH_JOB_ID in job scripts).")
    var batchJob: Int64

    func run() async throws {
        let setup = ExecutionSetup(configuration: try options.loadConfiguration())
        // Logs next to the job script when it is known; the first connection looks it up.
        var logDirectory = "\(setup.jobDirectory)/unknown/\(batchJob)"
        let logger = options.makeLogger(label: "ccat.runner")
        try await options.withDatabase(applicationName: "ccat-runner", logger: logger) { connection, _ in
            guard let job = try await OpsDB(connection).batchJob(id: batchJob) else {
                throw CommandError("no batch job \(batchJob) in the ops database")
            }
            logDirectory = URL(fileURLWithPath: job.scriptPath).deletingLastPathComponent().path
        }
        let owner = "\(ProcessInfo.processInfo.hostName):\(getpid()):job \(batchJob)"
        let summary = try await withRunner(options, lease: lease, owner: owner, logDirectory: logDirectory) { runner in
            try await runner.runBatchJob(batchJob)
        }
        try printSummary(summary, json: options.json)
    }
}

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one operation by hand (for admins debugging).",
        discussion: """
            The operation must not be submitted or running. It is claimed with a lease like in a batch \
            job, run here, and its result recorded. Its log goes to <state_directory>/exec/.
            """)

    @OptionGroup var options: GlobalOptions
    @OptionGroup var lease: LeaseOptions

    @Option(name: .long, help: "The operation id.")
    var operation: Int64

    func run() async throws {
        let setup = ExecutionSetup(configuration: try options.loadConfiguration())
        let user = ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())"
        let owner = "\(ProcessInfo.processInfo.hostName):\(getpid()):exec by \(user)"
        let summary = try await withRunner(options, lease: lease, owner: owner, logDirectory: "\(setup.stateDirectory)/exec") { runner in
            do {
                return try await runner.runByHand(operation)
            } catch let error as InvalidOperation {
                throw CommandError(error.description)
            }
        }
        try printSummary(summary, json: options.json)
    }
}
