import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import Managers
import OpsDB
import Postgres
import Scheduling
import ServiceLifecycle
import UnixSignals

struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the managers: packaging, bundling, transfers, unpacking, archiving, staging, deletion, monitoring, dispatch.",
        discussion: """
            One service per manager in this process. Each takes a PostgreSQL advisory lock as its \
            leader lock, so a second daemon (on another host) is a hot standby that takes over when \
            the first one's session ends. Each writes its heartbeat to service_heartbeat ('ccat status' \
            shows them). Loops wake on NOTIFY ccat_work and otherwise every --interval seconds. \
            SIGTERM or SIGINT stops every service after its current cycle; running batch jobs go on \
            and are tracked again at the next start.
            """
    )

    @OptionGroup var options: GlobalOptions

    // Each setting: this option, else the same key under 'daemon:' in the config file, else the default.
    @Option(name: .long, help: "Seconds between manager cycles when no NOTIFY arrives (default 30).")
    var interval: Double?

    @Option(name: .long, help: "Seconds between polls of the batch scheduler (default 5).")
    var pollInterval: Double?

    @Option(name: .long, help: "Files of an observation are packaged once none has arrived for this many seconds (default 60).")
    var packageSettle: Double?

    @Option(name: .long, help: "Close a transfer bundle at this many bytes (default 100 GiB).")
    var bundleMaxBytes: Int64?

    @Option(name: .long, help: "Close a smaller bundle once its oldest package has waited this many seconds (default 3600).")
    var bundleMaxAge: Double?

    @Option(name: .long, help: "Keep SOURCE and BUFFER copies at least this many seconds; a location's own retention wins (default 0).")
    var retention: Double?

    @Option(name: .long, help: "Seconds between MONITORING checks of every location (default 300).")
    var monitoringInterval: Double?

    @Option(name: .long, help: ArgumentHelp("Job script templates (default: $CCAT_JOBSCRIPTS, else PREFIX/share/ccat/jobscripts of this installation, else the source tree's jobscripts/).", valueName: "dir"))
    var jobscripts: String?

    @Option(name: .long, help: "Seconds a stop (SIGTERM, SIGINT) waits for running cycles before cancelling them (default 30).")
    var shutdownTimeout: Int?

    @Option(name: .long, help: "The name of this daemon in service_heartbeat (default: host:pid).")
    var instance: String?

    @Option(name: .long, help: ArgumentHelp("munged's socket, for decoding staging requests (default: $CCAT_MUNGE_SOCKET, else 'munge_socket' in the config file, else libmunge's default).", valueName: "path"))
    var mungeSocket: String?

    @Option(name: .long, help: "Keep staged data this many seconds after it is ready; a PROCESSING location's own retention wins (default 14 days).")
    var stagingRetention: Int64?

    @Option(name: .long, help: "Put up to this many bytes of one staging request into one batch job (default 500 GiB).")
    var stagingJobMaxBytes: Int64?

    /// The settings in force: options over the config file's `daemon:` over the defaults.
    struct Resolved {
        var interval = 30.0, pollInterval = 5.0, packageSettle = 60.0, bundleMaxBytes: Int64 = 100 << 30, bundleMaxAge = 3600.0
        var retention = 0.0, monitoringInterval = 300.0, shutdownTimeout = 30, stagingRetention: Int64 = 14 * 86400
        var stagingJobMaxBytes: Int64 = 500 << 30
    }

    func resolve(_ configuration: CCatConfiguration?) throws -> Resolved {
        let file = configuration?.daemon ?? [:]
        var settings = Resolved()
        settings.interval = interval ?? file["interval"] ?? settings.interval
        settings.pollInterval = pollInterval ?? file["poll_interval"] ?? settings.pollInterval
        settings.packageSettle = packageSettle ?? file["package_settle"] ?? settings.packageSettle
        settings.bundleMaxBytes = bundleMaxBytes ?? file["bundle_max_bytes"].map { Int64($0) } ?? settings.bundleMaxBytes
        settings.bundleMaxAge = bundleMaxAge ?? file["bundle_max_age"] ?? settings.bundleMaxAge
        settings.retention = retention ?? file["retention"] ?? settings.retention
        settings.monitoringInterval = monitoringInterval ?? file["monitoring_interval"] ?? settings.monitoringInterval
        settings.shutdownTimeout = shutdownTimeout ?? file["shutdown_timeout"].map { Int($0) } ?? settings.shutdownTimeout
        settings.stagingRetention = stagingRetention ?? file["staging_retention"].map { Int64($0) } ?? settings.stagingRetention
        settings.stagingJobMaxBytes = stagingJobMaxBytes ?? file["staging_job_max_bytes"].map { Int64($0) } ?? settings.stagingJobMaxBytes
        guard settings.interval > 0, settings.pollInterval > 0, settings.monitoringInterval > 0 else {
            throw ValidationError("interval, poll interval and monitoring interval must be positive")
        }
        guard settings.packageSettle >= 0, settings.bundleMaxAge >= 0, settings.retention >= 0, settings.stagingRetention >= 0 else {
            throw ValidationError("package settle, bundle max age, retention and staging retention must not be negative")
        }
        guard settings.bundleMaxBytes > 0, settings.stagingJobMaxBytes > 0 else { throw ValidationError("bundle max bytes and staging job max bytes must be positive") }
        guard settings.shutdownTimeout > 0 else { throw ValidationError("shutdown timeout must be positive") }
        return settings
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.daemon")
        let location = try options.locateDatabase()
        let configuration = try options.loadConfiguration()
        let resolved = try resolve(configuration)
        let interval = resolved.interval, pollInterval = resolved.pollInterval, monitoringInterval = resolved.monitoringInterval
        let shutdownTimeout = resolved.shutdownTimeout
        // Refuse a database that lacks migrations before any service starts.
        try await options.withOpsDatabase("ccat daemon", logger: logger) { _ in }
        let setup = ExecutionSetup(configuration: configuration)
        let scheduler = try setup.makeScheduler(setup.scheduler, logger: logger)
        let renderer = try JobScriptRenderer(builtinDirectory: try jobscripts ?? JobScriptRenderer.locateBuiltinDirectory(),
                                             overrideDirectory: configuration?.jobscriptOverrides)
        // The runner installed beside this executable (found from /proc/self/exe, so `ccat daemon`
        // run through PATH or a symbolic link finds it too).
        let runner = configuration?.runner ?? Installation.executableDirectory.appendingPathComponent("ccat-runner").path
        // A submission cut short (daemon killed during sbatch) is looked up by its token and
        // submitted again only after a grace period. The local scheduler's record is written
        // before the job starts, so its answer is final within seconds; slurmctld may take longer.
        let jobEnvironment = try location.jobEnvironment()
        if jobEnvironment.droppedPassword {
            logger.warning("the database connection string holds a password; job scripts get it without one, so runners need the password from ~/.pgpass, PGPASSFILE or a service file (README: Where the ops database is)")
        }
        let dispatch = DispatchSettings(jobDirectory: setup.jobDirectory, runnerPath: runner,
                                        environment: jobEnvironment.variables,
                                        ambiguousGraceSeconds: setup.scheduler == .local ? 10 : 120)
        var settings = ManagerSettings()
        settings.packageSettleSeconds = resolved.packageSettle
        settings.bundleMaxBytes = resolved.bundleMaxBytes
        settings.bundleMaxAgeSeconds = resolved.bundleMaxAge
        settings.defaultRetentionSeconds = resolved.retention
        settings.monitoringIntervalSeconds = monitoringInterval
        settings.munge = Munge.fromEnvironment(socket: mungeSocket, configured: configuration?.mungeSocket)
        settings.stagingRetentionSeconds = resolved.stagingRetention
        settings.stagingJobMaxBytes = resolved.stagingJobMaxBytes

        let name = instance ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
        let cycles: [(any ManagerCycle, Double)] = [
            (RawDataPackageManager(settings: settings), interval),
            (DataTransferPackageManager(settings: settings), interval),
            (TransferManager(settings: settings), interval),
            (UnpackManager(settings: settings), interval),
            (ArchiveManager(settings: settings), interval),
            (StagingManager(settings: settings), interval),
            (DeletionManager(settings: settings), interval),
            (MonitoringManager(settings: settings), min(interval, monitoringInterval)),
            (DispatchCycle(scheduler: scheduler, renderer: renderer, settings: dispatch), interval),
            (TrackCycle(scheduler: scheduler, policy: dispatch.retryPolicy), pollInterval),
        ]
        let services = cycles.map { cycle, seconds in
            ManagerService(cycle, conninfo: location.conninfo, interval: .milliseconds(Int(seconds * 1000)), instance: name, logger: logger)
        }
        logger.notice("ccat daemon \(name): \(services.count) services, scheduler \(setup.scheduler.rawValue), jobs under \(setup.jobDirectory)")
        var group = ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A cycle that does not end within the bound is cancelled: a stop never hangs on a
        // stuck query or a scheduler that does not answer. Nothing is lost: every step is a
        // transaction, and an unfinished submission is looked up by its token at the next start.
        group.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
    }
}
