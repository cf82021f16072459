import Foundation
import Postgres

/// What a scientist asks to stage: the files of observations and packages, narrowed by instrument
/// and by when the observation started. Stored as JSON in `staging_request.selection` and signed
/// inside the munge credential.
public struct StagingSelection: Codable, Sendable, Equatable {
    public var observations: [String]
    public var packages: [String]
    /// `instrument` or `instrument/module`.
    public var instruments: [String]
    public var from: Date?
    public var to: Date?

    public init(observations: [String] = [], packages: [String] = [], instruments: [String] = [], from: Date? = nil, to: Date? = nil) {
        self.observations = observations
        self.packages = packages
        self.instruments = instruments
        self.from = from
        self.to = to
    }

    public var isEmpty: Bool { observations.isEmpty && packages.isEmpty && instruments.isEmpty && from == nil && to == nil }

    /// Canonical JSON (sorted keys, ISO 8601 times in UTC), the same bytes for the same selection.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public static func parse(_ json: String) throws -> StagingSelection {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(StagingSelection.self, from: Data(json.utf8))
    }

    /// A short human description: "observations obs-1, obs-2; instrument prime-cam".
    public var summary: String {
        var parts: [String] = []
        if !observations.isEmpty { parts.append("observation\(observations.count == 1 ? "" : "s") \(Self.list(observations))") }
        if !packages.isEmpty { parts.append("package\(packages.count == 1 ? "" : "s") \(Self.list(packages))") }
        if !instruments.isEmpty { parts.append("instrument\(instruments.count == 1 ? "" : "s") \(Self.list(instruments))") }
        let format = ISO8601DateFormatter()
        switch (from, to) {
        case let (from?, to?): parts.append("started \(format.string(from: from)) to \(format.string(from: to))")
        case let (from?, nil): parts.append("started from \(format.string(from: from))")
        case let (nil, to?): parts.append("started before \(format.string(from: to))")
        case (nil, nil): break
        }
        return parts.isEmpty ? "everything" : parts.joined(separator: "; ")
    }

    private static func list(_ names: [String]) -> String {
        names.count <= 4 ? names.joined(separator: ", ") : names.prefix(3).joined(separator: ", ") + " and \(names.count - 3) more"
    }

    enum CodingKeys: String, CodingKey { case observations, packages, instruments, from, to }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        observations = try container.decodeIfPresent([String].self, forKey: .observations) ?? []
        packages = try container.decodeIfPresent([String].self, forKey: .packages) ?? []
        instruments = try container.decodeIfPresent([String].self, forKey: .instruments) ?? []
        from = try container.decodeIfPresent(Date.self, forKey: .from)
        to = try container.decodeIfPresent(Date.self, forKey: .to)
    }
}

/// One raw data package a selection names (`packageID` nil: files not packaged yet).
public struct SelectedPackage: Codable, Sendable, Equatable {
    public var packageID: Int64?
    public var package: String?
    public var obsID: String
    public var files: Int
    public var bytes: Int64
    public var packageStatus: String?
    public var packageBytes: Int64?
    /// Sites holding a verified long-term archive copy.
    public var archiveSites: Int?
    public var packageCreatedAt: Date?

    /// Stageable: packaged, with at least one verified archive copy.
    public var isArchived: Bool { packageID != nil && (archiveSites ?? 0) > 0 }
    /// What staging it moves: the whole package once packaged.
    public var stagedBytes: Int64 { packageBytes ?? bytes }
}

extension Array where Element == SelectedPackage {
    /// What of a selection cannot be staged yet, as a person reads it ("2 of 5 packages are not
    /// archived yet, 1 file is not packaged yet"); nil when all of it can.
    public var notStageableYet: String? {
        let packaged = filter { $0.packageID != nil }
        let notArchived = packaged.filter { !$0.isArchived }.count
        let unpackagedFiles = filter { $0.packageID == nil }.reduce(0) { $0 + $1.files }
        var parts: [String] = []
        if notArchived > 0 {
            parts.append("\(notArchived) of \(packaged.count) \(packaged.count == 1 ? "package" : "packages") \(notArchived == 1 ? "is" : "are") not archived yet")
        }
        if unpackagedFiles > 0 {
            parts.append("\(unpackagedFiles) \(unpackagedFiles == 1 ? "file is" : "files are") not packaged yet")
        }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}

/// A PROCESSING location as scientists see it (`staging_location`).
public struct StagingLocation: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var site: String
    public var active: Bool
    public var rootPath: String?
    public var allowedGroups: [String]
    public var quotaBytesPerUser: Int64?
    public var retentionSeconds: Int64?

    public init(id: Int64, name: String, site: String, active: Bool, rootPath: String?, allowedGroups: [String],
                quotaBytesPerUser: Int64?, retentionSeconds: Int64?) {
        self.id = id
        self.name = name
        self.site = site
        self.active = active
        self.rootPath = rootPath
        self.allowedGroups = allowedGroups
        self.quotaBytesPerUser = quotaBytesPerUser
        self.retentionSeconds = retentionSeconds
    }
}

/// How far a request got (`staging_request_progress`).
public struct StagingProgress: Codable, Sendable, Equatable {
    public var stagingRequestID: Int64
    public var packages: Int
    public var packagesStaged: Int
    public var bytes: Int64
    public var bytesStaged: Int64
    public var startedAt: Date?
    public var lastStagedAt: Date?

    public init(stagingRequestID: Int64, packages: Int, packagesStaged: Int, bytes: Int64, bytesStaged: Int64, startedAt: Date?, lastStagedAt: Date?) {
        self.stagingRequestID = stagingRequestID
        self.packages = packages
        self.packagesStaged = packagesStaged
        self.bytes = bytes
        self.bytesStaged = bytesStaged
        self.startedAt = startedAt
        self.lastStagedAt = lastStagedAt
    }
}

/// Names in a selection that the catalogue does not know.
public struct UnknownNames: Sendable, Equatable {
    public var observations: [String]
    public var packages: [String]
    public var isEmpty: Bool { observations.isEmpty && packages.isEmpty }
    public var description: String {
        var parts: [String] = []
        if !observations.isEmpty { parts.append("unknown observation\(observations.count == 1 ? "" : "s") \(observations.joined(separator: ", "))") }
        if !packages.isEmpty { parts.append("unknown raw data package\(packages.count == 1 ? "" : "s") \(packages.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }
}
