/// Every setting of `ccat daemon`, typed, and each written once: its key under `daemon:` in the
/// configuration file, its command-line option (the key with '-' for '_'), what it means, its
/// unit and its default. The option's help, the file's checks and the values the services and
/// managers get (`ManagerSettings(daemon:)`) all come from here. An option wins over the file,
/// the file over the default.
public struct DaemonSettings: Sendable, Equatable {
    /// Seconds between manager cycles when no NOTIFY arrives.
    public var interval = 30.0
    /// Seconds between polls of the batch scheduler.
    public var pollInterval = 5.0
    /// Files of an observation are packaged once none has arrived for this many seconds.
    public var packageSettle = 60.0
    /// A transfer bundle is closed at this many bytes, ...
    public var bundleMaxBytes: Int64 = 100 << 30
    /// ... or once its oldest package has waited this many seconds.
    public var bundleMaxAge = 3600.0
    /// SOURCE and BUFFER copies stay at least this many seconds; a location's own retention wins.
    public var retention = 0.0
    /// Seconds between MONITORING checks of every location.
    public var monitoringInterval = 300.0
    /// Seconds between fixity passes at one long-term archive (each reads what is left of the
    /// day's allowance).
    public var fixityInterval = 3600.0
    /// Seconds between decisions of the link optimizer (each link's concurrent transfer jobs).
    public var linkDecisionInterval = 60.0
    /// Seconds an outage (a peer or the database out of reach, jobs that never reached their work)
    /// may last before its failed attempts count against the operations' attempts.
    public var outageGrace = 3600.0
    /// Staged data is kept this many seconds after it is ready; a PROCESSING location's own
    /// retention wins.
    public var stagingRetention: Int64 = 14 * 86400
    /// Bytes of one staging request that go into one batch job.
    public var stagingJobMaxBytes: Int64 = 500 << 30
    /// Seconds a stop (SIGTERM, SIGINT) waits for running cycles before cancelling them.
    public var shutdownTimeout = 30.0

    public init() {}

    public enum Unit: Sendable {
        case seconds, bytes
    }

    /// One setting: how it is named, what it means, and where its value lives.
    public struct Key: Sendable {
        /// As written under `daemon:` in the configuration file.
        public let name: String
        public let unit: Unit
        /// Must be more than 0 (else 0 or more).
        public let positive: Bool
        public let meaning: String
        let value: any WritableKeyPath<DaemonSettings, Double> & Sendable

        /// The `ccat daemon` option.
        public var option: String { "--" + String(name.map { $0 == "_" ? "-" : $0 }) }

        /// The option's help: its meaning and its default.
        public var help: String { "\(meaning) (default \(Self.shown(DaemonSettings()[keyPath: value], unit)))." }

        static func shown(_ value: Double, _ unit: Unit) -> String {
            let whole = Int64(value)
            switch unit {
            case .bytes where whole >= 1 << 30 && whole % (1 << 30) == 0: return "\(whole >> 30) GiB"
            case .seconds where whole >= 86400 && whole % 86400 == 0 && Double(whole) == value: return "\(whole / 86400) days"
            default: return Double(whole) == value ? "\(whole)" : "\(value)"
            }
        }
    }

    /// Every setting, in the order `--help` and the example configuration list them.
    public static let keys: [Key] = [
        Key(name: "interval", unit: .seconds, positive: true, meaning: "Seconds between manager cycles when no NOTIFY arrives", value: \.interval),
        Key(name: "poll_interval", unit: .seconds, positive: true, meaning: "Seconds between polls of the batch scheduler", value: \.pollInterval),
        Key(name: "package_settle", unit: .seconds, positive: false,
            meaning: "Files of an observation are packaged once none has arrived for this many seconds", value: \.packageSettle),
        Key(name: "bundle_max_bytes", unit: .bytes, positive: true, meaning: "Close a transfer bundle at this many bytes", value: \.bundleMaxBytesValue),
        Key(name: "bundle_max_age", unit: .seconds, positive: false,
            meaning: "Close a smaller bundle once its oldest package has waited this many seconds", value: \.bundleMaxAge),
        Key(name: "retention", unit: .seconds, positive: false,
            meaning: "Keep SOURCE and BUFFER copies at least this many seconds; a location's own retention wins", value: \.retention),
        Key(name: "monitoring_interval", unit: .seconds, positive: true, meaning: "Seconds between MONITORING checks of every location",
            value: \.monitoringInterval),
        Key(name: "fixity_interval", unit: .seconds, positive: true,
            meaning: "Seconds between fixity passes at one long-term archive; each reads what is left of the day's allowance",
            value: \.fixityInterval),
        Key(name: "link_decision_interval", unit: .seconds, positive: true,
            meaning: "Seconds between the link optimizer's decisions on how many transfer jobs each link runs at once",
            value: \.linkDecisionInterval),
        Key(name: "outage_grace", unit: .seconds, positive: false,
            meaning: "Seconds an outage (a site or the database out of reach) may last before its failed attempts count against an operation's attempts; read by the daemon and the runners",
            value: \.outageGrace),
        Key(name: "staging_retention", unit: .seconds, positive: false,
            meaning: "Keep staged data this many seconds after it is ready; a PROCESSING location's own retention wins", value: \.stagingRetentionValue),
        Key(name: "staging_job_max_bytes", unit: .bytes, positive: true, meaning: "Put up to this many bytes of one staging request into one batch job",
            value: \.stagingJobMaxBytesValue),
        Key(name: "shutdown_timeout", unit: .seconds, positive: true,
            meaning: "Seconds a stop (SIGTERM, SIGINT) waits for running cycles before cancelling them", value: \.shutdownTimeout),
    ]

    public static func key(_ name: String) -> Key {
        guard let key = keys.first(where: { $0.name == name }) else { preconditionFailure("no daemon setting \(name)") }
        return key
    }

    /// A setting that is not one, or a value it cannot take; said with the key or option as given.
    public struct Refusal: Error, Sendable, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Sets the setting named `name` (a file key); `shownAs` is how the caller names it in errors.
    public mutating func set(_ name: String, to value: Double, shownAs: String? = nil) throws {
        guard let key = Self.keys.first(where: { $0.name == name }) else {
            throw Refusal(description: "unknown daemon setting '\(name)' (known: \(Self.keys.map(\.name).sorted().joined(separator: ", ")))")
        }
        let unit = key.unit == .bytes ? "bytes" : "seconds"
        guard value.isFinite, key.positive ? value > 0 : value >= 0, value < 9.2e18 else {
            throw Refusal(description: "daemon setting '\(shownAs ?? name)' must be a number of \(unit), \(key.positive ? "more than 0" : "0 or more")")
        }
        self[keyPath: key.value] = value
    }

    // Byte counts and whole-second counts, seen as Double by the table.
    var bundleMaxBytesValue: Double {
        get { Double(bundleMaxBytes) }
        set { bundleMaxBytes = Int64(newValue) }
    }
    var stagingJobMaxBytesValue: Double {
        get { Double(stagingJobMaxBytes) }
        set { stagingJobMaxBytes = Int64(newValue) }
    }
    var stagingRetentionValue: Double {
        get { Double(stagingRetention) }
        set { stagingRetention = Int64(newValue) }
    }
}
