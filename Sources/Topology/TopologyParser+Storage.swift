import Foundation
import OpsDB
import Yams

/// The `storage:` of a location, and the check that no two locations share it.
extension TopologyParser {
    /// A parsed location with where it was declared, for checks across locations.
    struct PlacedLocation {
        var site: String
        var spec: LocationSpec
        var node: Node
        var path: String
        var name: String { "\(site):\(spec.name)" }
        var storageNode: Node { node.mapping?["storage"] ?? node }
    }

    /// No two locations may share storage (StorageOverlap says why); each clash names both.
    static func checkOverlaps(_ placed: [PlacedLocation], collector: IssueCollector) {
        for (index, later) in placed.enumerated() {
            for earlier in placed[..<index] {
                let a = StorageOverlap.Place(site: earlier.site, storage: earlier.spec.storage, host: earlier.spec.sshHost)
                let b = StorageOverlap.Place(site: later.site, storage: later.spec.storage, host: later.spec.sshHost)
                guard let how = StorageOverlap.overlap(a, b) else { continue }
                collector.add(later.storageNode, "\(later.path).storage",
                              "'\(later.name)' and '\(earlier.name)' (line \(earlier.storageNode.mark?.line ?? 0), \(earlier.path)) share storage: \(how). Cleaning one would delete the other's files; give every location a root of its own, neither inside the other")
            }
        }
    }

    /// `storage: {disk: {root: ..., host: dtn.example.org}}`: where rsync reaches the path over ssh.
    static func parseSSHHost(_ storage: Node, path: String, collector: IssueCollector) -> String? {
        guard let node = storage.mapping?["disk"]?.mapping?["host"] else { return nil }
        guard let host = node.string, host.wholeMatch(of: /^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/) != nil, host.count <= 255 else {
            collector.add(node, path, "expected an ssh destination: a host name, user@host or an alias of the runner's ssh configuration")
            return nil
        }
        return host
    }

    static func parseStorage(_ node: Node, path: String, collector: IssueCollector) -> LocationStorage? {
        guard let fields = Fields(node, path: path, collector: collector) else { return nil }
        let kinds = ["disk", "s3", "tape"]
        fields.allow(kinds)
        let present = kinds.filter { fields[$0] != nil }
        guard present.count == 1, let kind = present.first, let body = fields[kind] else {
            collector.add(node, path, "give exactly one of disk, s3 or tape (found: \(present.isEmpty ? "none" : present.joined(separator: ", ")))")
            return nil
        }
        let subpath = "\(path).\(kind)"
        guard let spec = Fields(body, path: subpath, collector: collector) else { return nil }
        switch kind {
        case "disk":
            spec.allow(["root", "host"])
            guard let root = spec.string("root", required: true) else { return nil }
            if !root.hasPrefix("/") || root.split(separator: "/").contains("..") {
                collector.add(spec["root"], "\(subpath).root", "must be an absolute path without '..', got '\(root)'")
                return nil
            }
            if root.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) {
                collector.add(spec["root"], "\(subpath).root", "contains a control character (newline, tab, ...): \(root.debugDescription)")
                return nil
            }
            if StorageOverlap.components(root).isEmpty {
                collector.add(spec["root"], "\(subpath).root", "'/' cannot be a location's root: give the directory that holds only this location's files")
                return nil
            }
            return .disk(rootPath: root)
        case "s3":
            spec.allow(["endpoint", "bucket", "region", "prefix", "credentials", "path_style"])
            let endpoint = spec.string("endpoint", required: true)
            if let endpoint, let components = URLComponents(string: endpoint), components.user != nil || components.password != nil {
                // Never printed back: the text holds a secret.
                collector.add(spec["endpoint"], "\(subpath).endpoint", "must not carry credentials (user:password@); keys are read from 'credentials: env:...' or 'file:...', never from the topology file")
                return nil
            }
            if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) || endpoint.contains(where: { $0.isWhitespace }) {
                collector.add(spec["endpoint"], "\(subpath).endpoint", "must be an http:// or https:// URL, got '\(String(endpoint.prefix(200)))'")
            }
            let bucket = spec.string("bucket", required: true)
            if let bucket, bucket.wholeMatch(of: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/) == nil {
                collector.add(spec["bucket"], "\(subpath).bucket", "'\(bucket)' is not a valid S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
            }
            let region = spec.string("region") ?? "us-east-1"
            let prefix = spec.string("prefix") ?? ""
            if prefix.hasPrefix("/") {
                collector.add(spec["prefix"], "\(subpath).prefix", "must not start with '/'")
            }
            let credentials = spec.string("credentials", required: true)
            if let credentials, credentials.wholeMatch(of: /^env:[A-Za-z_][A-Za-z0-9_]*$/) == nil && credentials.wholeMatch(of: /^file:\/.+$/) == nil {
                collector.add(spec["credentials"], "\(subpath).credentials", "say where the keys are read from, 'env:VARIABLE_PREFIX' or 'file:/absolute/path'; never put keys in the topology file")
            }
            let pathStyle = spec.bool("path_style") ?? true
            guard let endpoint, let bucket, let credentials else { return nil }
            return .s3(endpointURL: endpoint, bucket: bucket, region: region, prefix: prefix, credentialsSource: credentials, pathStyle: pathStyle)
        default:
            spec.allow(["library", "pool"])
            guard let library = spec.string("library", required: true) else { return nil }
            return .tape(library: library, pool: spec.string("pool"))
        }
    }
}
