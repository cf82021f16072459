import OpsDB

/// A topology file, validated: the sites and locations an admin declares.
public struct TopologySpec: Sendable, Equatable {
    public var sites: [SiteSpec]
    /// Batch settings every location starts from.
    public var defaults: BatchProfile
    /// Distinct sites that must hold a verified archive copy before temporary copies go; nil:
    /// every site with an active long-term archive.
    public var requiredArchiveSites: Int?
    /// Bounds of the concurrent transfer jobs on links the file names (`links:`); other links
    /// keep the defaults.
    public var links: [LinkSpec]

    public init(sites: [SiteSpec], defaults: BatchProfile = BatchProfile(), requiredArchiveSites: Int? = nil, links: [LinkSpec] = []) {
        self.sites = sites
        self.defaults = defaults
        self.requiredArchiveSites = requiredArchiveSites
        self.links = links
    }
}

/// `links: [{from: ccat, to: cologne, min_active: 2, max_active: 20}]`: between which bounds the
/// link optimizer moves the link's concurrent transfer jobs.
public struct LinkSpec: Sendable, Equatable {
    public var from: String
    public var to: String
    public var minActive: Int
    public var maxActive: Int
    public var windows: [LinkWindow]

    public init(from: String, to: String, minActive: Int, maxActive: Int, windows: [LinkWindow] = []) {
        self.from = from
        self.to = to
        self.minActive = minActive
        self.maxActive = maxActive
        self.windows = windows
    }
}

public struct SiteSpec: Sendable, Equatable {
    public var shortName: String
    public var name: String
    public var location: String?
    public var locations: [LocationSpec]
}

public struct LocationSpec: Sendable, Equatable {
    public var name: String
    public var type: LocationType
    public var storage: LocationStorage
    public var priority: Int
    public var active: Bool
    public var fillThresholdPercent: Int
    public var retentionSeconds: Int64?
    public var description: String?
    /// The location's own batch settings (already overlaid on the topology defaults).
    public var batch: BatchProfile
    /// Per-operation overrides, overlaid on `batch` when a queue is discovered.
    public var operationBatch: [OperationType: BatchProfile]
    /// Who may stage into a PROCESSING location.
    public var staging = StagingPolicySpec()
    /// For disk storage: the ssh destination rsync routes reach the path through (nil: mounted).
    public var sshHost: String?
    /// A LONG_TERM_ARCHIVE's `integrity:` settings (fixity cycle and budget, audit interval, brake).
    public var integrity = IntegrityPolicy()
}

/// A PROCESSING location's `staging:` settings.
public struct StagingPolicySpec: Sendable, Equatable {
    /// Unix groups whose members may stage here; none: nobody may.
    public var groups: [String] = []
    public var quotaBytesPerUser: Int64?
    public init(groups: [String] = [], quotaBytesPerUser: Int64? = nil) {
        self.groups = groups
        self.quotaBytesPerUser = quotaBytesPerUser
    }
}

