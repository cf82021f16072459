import ArgumentParser
import Auth
import CCatCLI
import CCatConfig
import Foundation
import Logging
import Managers
import Metrics
import Monitor
import OpsDB
import Postgres
import Prometheus
import Scheduling
import ServiceLifecycle
import UnixSignals

struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the managers: packaging, bundling, transfers, unpacking, archiving, staging, deletion, monitoring, integrity (fixity, audit, repair), alerts, dispatch; optionally a status page and /metrics.",
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

    // Each setting: this option, else the same key under 'daemon:' in the config file, else the
    // default; names, meanings and defaults are DaemonSettings.keys.
    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("interval").help))
    var interval: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("poll_interval").help))
    var pollInterval: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("package_settle").help))
    var packageSettle: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("bundle_max_bytes").help))
    var bundleMaxBytes: Int64?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("bundle_max_age").help))
    var bundleMaxAge: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("retention").help))
    var retention: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("monitoring_interval").help))
    var monitoringInterval: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("fixity_interval").help))
    var fixityInterval: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("outage_grace").help))
    var outageGrace: Double?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("link_decision_interval").help))
    var linkDecisionInterval: Double?

    @Option(name: .long, help: ArgumentHelp("Job script templates (default: $CCAT_JOBSCRIPTS, else PREFIX/share/ccat/jobscripts of this installation, else the source tree's jobscripts/).", valueName: "dir"))
    var jobscripts: String?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("shutdown_timeout").help))
    var shutdownTimeout: Int?

    @Option(name: .long, help: "The name of this daemon in service_heartbeat (default: host:pid).")
    var instance: String?

    @Option(name: .long, help: ArgumentHelp("munged's socket, for decoding staging requests (default: $CCAT_MUNGE_SOCKET, else 'munge_socket' in the config file, else libmunge's default).", valueName: "path"))
    var mungeSocket: String?

    @Option(name: .long, help: ArgumentHelp("""
        Serve the status page, /metrics, /healthz and /api/v1/status here: PORT (on loopback), HOST:PORT or [IPv6]:PORT \
        (default: 'http:' in the config file; off when neither is given). Read-only; put a proxy with authentication in front \
        before serving beyond loopback.
        """, valueName: "address"))
    var http: String?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("staging_retention").help))
    var stagingRetention: Int64?

    @Option(name: .long, help: ArgumentHelp(DaemonSettings.key("staging_job_max_bytes").help))
    var stagingJobMaxBytes: Int64?

    /// The settings in force: these options over the config file's `daemon:` over the defaults.
    func resolve(_ configuration: CCatConfiguration?) throws -> DaemonSettings {
        var settings = configuration?.daemonSettings ?? DaemonSettings()
        let given: [(String, Double?)] = [
            ("interval", interval), ("poll_interval", pollInterval), ("package_settle", packageSettle),
            ("bundle_max_bytes", bundleMaxBytes.map(Double.init)), ("bundle_max_age", bundleMaxAge), ("retention", retention),
            ("monitoring_interval", monitoringInterval), ("fixity_interval", fixityInterval), ("link_decision_interval", linkDecisionInterval),
            ("outage_grace", outageGrace),
            ("staging_retention", stagingRetention.map(Double.init)),
            ("staging_job_max_bytes", stagingJobMaxBytes.map(Double.init)), ("shutdown_timeout", shutdownTimeout.map(Double.init)),
        ]
        for case let (name, value?) in given {
            do {
                try settings.set(name, to: value, shownAs: DaemonSettings.key(name).option)
            } catch let refusal as DaemonSettings.Refusal {
                throw ValidationError(refusal.description)
            }
        }
        return settings
    }

    /// The HTTP side, with swift-metrics bootstrapped into the registry its /metrics appends.
    static func statusServer(at address: HTTPAddress, conninfo: String, leadership: LeadershipBoard, logger: Logger) -> any Service {
        let live = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: live)
        factory.durationHistogramBuckets[Dispatcher.submissionMetric] = [
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        MetricsSystem.bootstrap(factory)
        let server = StatusServer(address: address, conninfo: conninfo, leadership: leadership, live: live, logger: logger)
        return server.makeService { bound in
            // Said whatever the log level: the admin asked for it and needs its address (port 0 picks one).
            FileHandle.standardError.write(Data("ccat daemon: status page at \(bound.url) (also /metrics, /healthz, /api/v1/status)\n".utf8))
            logger.notice("status page at \(bound.url) (also /metrics, /healthz, /api/v1/status)", metadata: ["address": "\(bound)"])
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.daemon")
        let location = try options.locateDatabase()
        let configuration = try options.loadConfiguration()
        let resolved = try resolve(configuration)
        let interval = resolved.interval, pollInterval = resolved.pollInterval, monitoringInterval = resolved.monitoringInterval
        // The address is checked before anything starts: a taken port is said at once, with the port.
        let httpAddress = try (http ?? configuration?.http).map { try HTTPAddress(parsing: $0) }
        try httpAddress?.checkAvailable()
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
        let jobEnvironment = try location.jobEnvironment(runnerDatabase: configuration?.runnerDatabase)
        if jobEnvironment.droppedPassword {
            logger.warning("the database connection string holds a password; job scripts get it without one, so runners need the password from ~/.pgpass, PGPASSFILE or a service file (docs/admin-guide.md: Where the ops database is)")
        }
        let dispatch = DispatchSettings(jobDirectory: setup.jobDirectory, runnerPath: runner,
                                        environment: jobEnvironment.variables,
                                        ambiguousGraceSeconds: setup.scheduler == .local ? 10 : 120,
                                        retryPolicy: RetryPolicy(outageGraceSeconds: resolved.outageGrace))
        var settings = ManagerSettings(daemon: resolved)
        settings.munge = Munge.fromEnvironment(socket: mungeSocket, configured: configuration?.mungeSocket)
        // Staging for a Slurm job's burst-buffer directive is confirmed with Slurm itself.
        if setup.scheduler == .slurm {
            let slurm = ScontrolJobLookup()
            settings.slurmJobs = slurm
            settings.sentinels = slurm
        }

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
            (IntegrityManager(settings: settings), min(interval, resolved.fixityInterval)),
            (DispatchCycle(scheduler: scheduler, renderer: renderer, settings: dispatch), interval),
            (TrackCycle(scheduler: scheduler, policy: dispatch.retryPolicy), pollInterval),
            (AlertManager(settings: configuration?.alerts ?? AlertSettings(), site: name), interval),
        ]
        let leadership = LeadershipBoard()
        var services: [any Service] = cycles.map { cycle, seconds in
            ManagerService(cycle, conninfo: location.conninfo, interval: .milliseconds(Int(seconds * 1000)), instance: name, logger: logger,
                           board: leadership)
        }
        if let httpAddress {
            services.append(Self.statusServer(at: httpAddress, conninfo: location.conninfo, leadership: leadership, logger: logger))
        }
        logger.notice("ccat daemon started", metadata: ["instance": "\(name)", "services": "\(services.count)",
                                                      "scheduler": "\(setup.scheduler.rawValue)", "jobs": "\(setup.jobDirectory)"])
        var group = ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A cycle that does not end within the bound is cancelled: a stop never hangs on a
        // stuck query or a scheduler that does not answer. Nothing is lost: every step is a
        // transaction, and an unfinished submission is looked up by its token at the next start.
        group.maximumGracefulShutdownDuration = .milliseconds(Int(resolved.shutdownTimeout * 1000))
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
    }
}
