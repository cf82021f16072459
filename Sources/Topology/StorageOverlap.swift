import OpsDB

/// Whether two locations' storage could hold the same files. Cleanup deletes a BUFFER's or
/// SOURCE's files once they are archived; if an archive shared that directory, its copies would go
/// with them while the catalogue still listed them. So roots of different locations must never be
/// equal or nested.
///
/// Disk roots are compared after normalisation (`//`, `.` and a trailing `/` removed) when both
/// are on the same host: the same site with neither naming a `host`, or the same `host`. Locations
/// of different sites without a `host` are mounted on different machines, where one path may
/// well be used twice. Symbolic links are not resolved: `topology apply` may run far from the
/// storage. S3 locations share storage when endpoint and bucket are the same and one prefix is the
/// other or lies below it (keys are `prefix/...`), whatever the site.
public enum StorageOverlap {
    /// One location as the check sees it.
    public struct Place: Sendable {
        public var site: String
        public var storage: LocationStorage
        public var host: String?
        public init(site: String, storage: LocationStorage, host: String?) {
            self.site = site
            self.storage = storage
            self.host = host
        }
    }

    /// Nil when the two places cannot share files, else how they overlap ("the same directory
    /// /data", "/data/buffer lies inside /data").
    public static func overlap(_ a: Place, _ b: Place) -> String? {
        switch (a.storage, b.storage) {
        case (.disk(let rootA), .disk(let rootB)):
            guard sameHost(a, b) else { return nil }
            return nested(components(rootA), components(rootB), render: { "/" + $0.joined(separator: "/") }, unit: "directory")
        case (.s3(let endpointA, let bucketA, _, let prefixA, _, _), .s3(let endpointB, let bucketB, _, let prefixB, _, _)):
            guard normalisedEndpoint(endpointA) == normalisedEndpoint(endpointB), bucketA == bucketB else { return nil }
            return nested(prefixComponents(prefixA), prefixComponents(prefixB),
                          render: { "s3://\(bucketA)/" + $0.joined(separator: "/") }, unit: "bucket prefix")
        default:
            return nil
        }
    }

    static func sameHost(_ a: Place, _ b: Place) -> Bool {
        switch (a.host, b.host) {
        case (nil, nil): return a.site == b.site
        case (let hostA?, let hostB?): return hostA.lowercased() == hostB.lowercased()
        default: return false
        }
    }

    /// `/data//buffer/./` -> ["data", "buffer"].
    public static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    static func prefixComponents(_ prefix: String) -> [String] {
        prefix.split(separator: "/").map(String.init)
    }

    /// Scheme, host and port, lower-cased; a default port and a trailing slash dropped.
    static func normalisedEndpoint(_ endpoint: String) -> String {
        var text = endpoint.lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        if text.hasPrefix("https://"), text.hasSuffix(":443") { text.removeLast(4) }
        if text.hasPrefix("http://"), text.hasSuffix(":80") { text.removeLast(3) }
        return text
    }

    static func nested(_ a: [String], _ b: [String], render: ([String]) -> String, unit: String) -> String? {
        if a == b { return "the same \(unit) \(render(a))" }
        if b.starts(with: a) { return "\(render(b)) lies inside \(render(a))" }
        if a.starts(with: b) { return "\(render(a)) lies inside \(render(b))" }
        return nil
    }
}
