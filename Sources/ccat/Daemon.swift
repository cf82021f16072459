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

    @Option(name: .long, help: "Seconds between manager cycles when no NOTIFY arrives.")
    var interval = 30.0

    @Option(name: .long, help: "Seconds between polls of the batch scheduler.")
    var pollInterval = 5.0

    @Option(name: .long, help: "Files of an observation are packaged once none has arrived for this many seconds.")
    var packageSettle = 60.0

    @Option(name: .long, help: "Close a transfer bundle at this many bytes.")
    var bundleMaxBytes: Int64 = 100 << 30

    @Option(name: .long, help: "Close a smaller bundle once its oldest package has waited this many seconds.")
    var bundleMaxAge = 3600.0

    @Option(name: .long, help: "Keep SOURCE and BUFFER copies at least this many seconds (a location's own retention wins).")
    var retention = 0.0

    @Option(name: .long, help: "Seconds between MONITORING checks of every location.")
    var monitoringInterval = 300.0

    @Option(name: .long, help: ArgumentHelp("Job script templates (default: $CCAT_JOBSCRIPTS, else share/ccat/jobscripts next to the executable, else the source tree's jobscripts/).", valueName: "dir"))
    var jobscripts: String?

    @Option(name: .long, help: "Seconds a stop (SIGTERM, SIGINT) waits for running cycles before cancelling them.")
    var shutdownTimeout = 30

    @Option(name: .long, help: "The name of this daemon in service_heartbeat (default: host:pid).")
    var instance: String?

    @Option(name: .long, help: ArgumentHelp("munged's socket, for decoding staging requests (default: $CCAT_MUNGE_SOCKET, else libmunge's default).", valueName: "path"))
    var mungeSocket: String?

    @Option(name: .long, help: "Keep staged data this many seconds after it is ready (a PROCESSING location's own retention wins).")
    var stagingRetention: Int64 = 14 * 86400

    @Option(name: .long, help: "Put up to this many bytes of one staging request into one batch job.")
    var stagingJobMaxBytes: Int64 = 500 << 30

    func validate() throws {
        guard interval > 0, pollInterval > 0, monitoringInterval > 0 else { throw ValidationError("intervals must be positive") }
        guard packageSettle >= 0, bundleMaxAge >= 0, retention >= 0 else { throw ValidationError("--package-settle, --bundle-max-age and --retention must not be negative") }
        guard bundleMaxBytes > 0 else { throw ValidationError("--bundle-max-bytes must be positive") }
        guard stagingRetention >= 0, stagingJobMaxBytes > 0 else { throw ValidationError("--staging-retention must not be negative and --staging-job-max-bytes must be positive") }
        guard shutdownTimeout > 0 else { throw ValidationError("--shutdown-timeout must be positive") }
    }

    static func builtinJobscripts(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        if let directory = ProcessInfo.processInfo.environment["CCAT_JOBSCRIPTS"], !directory.isEmpty { return directory }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var candidates = [executable.appendingPathComponent("../share/ccat/jobscripts").standardized.path]
        // A build tree: .build/<triple>/<config>/ccat -> the checkout's jobscripts/.
        var directory = executable
        for _ in 0..<4 {
            directory = directory.deletingLastPathComponent()
            candidates.append(directory.appendingPathComponent("jobscripts").path)
        }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: "\($0)/default.sh.mustache") }) else {
            throw ValidationError("no job script templates found (looked in \(candidates.joined(separator: ", "))); pass --jobscripts DIR or set CCAT_JOBSCRIPTS")
        }
        return found
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.daemon")
        let location = try options.locateDatabase()
        let configuration = try options.loadConfiguration()
        try await options.withDatabase(applicationName: "ccat daemon", logger: logger) { connection, _ in
            try await requireCurrentSchema(connection)
        }
        let setup = ExecutionSetup(configuration: configuration)
        let scheduler = try setup.makeScheduler(setup.scheduler, logger: logger)
        let renderer = try JobScriptRenderer(builtinDirectory: try Self.builtinJobscripts(jobscripts),
                                             overrideDirectory: configuration?.jobscriptOverrides)
        let runner = configuration?.runner ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("ccat-runner").path
        // A submission cut short (daemon killed during sbatch) is looked up by its token and
        // submitted again only after a grace period. The local scheduler's record is written
        // before the job starts, so its answer is final within seconds; slurmctld may take longer.
        let dispatch = DispatchSettings(jobDirectory: setup.jobDirectory, runnerPath: runner,
                                        environment: [("CCAT_DATABASE_URL", location.conninfo)],
                                        ambiguousGraceSeconds: setup.scheduler == .local ? 10 : 120)
        var settings = ManagerSettings()
        settings.packageSettleSeconds = packageSettle
        settings.bundleMaxBytes = bundleMaxBytes
        settings.bundleMaxAgeSeconds = bundleMaxAge
        settings.defaultRetentionSeconds = retention
        settings.monitoringIntervalSeconds = monitoringInterval
        settings.munge = Munge.fromEnvironment(socket: mungeSocket, configured: configuration?.mungeSocket)
        settings.stagingRetentionSeconds = stagingRetention
        settings.stagingJobMaxBytes = stagingJobMaxBytes

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
