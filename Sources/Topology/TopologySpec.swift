import OpsDB

/// A topology file, validated: the sites and locations an admin declares.
public struct TopologySpec: Sendable, Equatable {
    public var sites: [SiteSpec]
    /// Batch settings every location starts from.
    public var defaults: BatchProfile

    public init(sites: [SiteSpec], defaults: BatchProfile = BatchProfile()) {
        self.sites = sites
        self.defaults = defaults
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
}
