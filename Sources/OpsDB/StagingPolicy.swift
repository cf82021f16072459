import Foundation

/// What a scientist's munge credential carries: the request exactly as it was made, so a row
/// changed after signing (or a credential pasted into another row) is refused.
public struct StagingCredentialPayload: Codable, Sendable, Equatable {
    public var version: Int
    public var selection: StagingSelection
    public var destination: String
    /// Random, so two identical requests never share a credential.
    public var nonce: String
    /// Set by the burst-buffer script (as the Slurm user): the request is for this job's owner.
    public var onBehalf: OnBehalf?
    /// `--slurm-dependency`: the daemon keeps a sentinel job for the request (absent: false).
    public var slurmDependency: Bool?

    /// A request for a Slurm job's directive, made for the job's owner.
    public struct OnBehalf: Codable, Sendable, Equatable {
        public var slurmJob: Int64
        /// The owner's uid, as the burst-buffer script was told by Slurm.
        public var uid: UInt32
        /// The job's end does not release the data.
        public var keep: Bool

        public init(slurmJob: Int64, uid: UInt32, keep: Bool) {
            self.slurmJob = slurmJob
            self.uid = uid
            self.keep = keep
        }
    }

    public init(selection: StagingSelection, destination: String, onBehalf: OnBehalf? = nil, slurmDependency: Bool = false,
                nonce: String = UUID().uuidString) {
        self.version = 1
        self.selection = selection
        self.destination = destination
        self.onBehalf = onBehalf
        self.slurmDependency = slurmDependency ? true : nil
        self.nonce = nonce
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> StagingCredentialPayload {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(StagingCredentialPayload.self, from: data)
    }
}

/// The rules for a staging request, in one place: `ccat stage request` checks them before it
/// submits (a refusal there is immediate and says what to do), and the daemon checks them again
/// when it decodes the request's credential, as the authority (a request inserted by other means
/// meets the same rules and the same words).
public enum StagingPolicy {
    /// A request that breaks a rule, with what the scientist can do about it.
    public struct Refusal: Error, Sendable, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The PROCESSING location a request names: `site.name`, or `name` where only one site has it;
    /// it must be active.
    public static func location(named name: String, in locations: [StagingLocation]) throws -> StagingLocation {
        let qualified = locations.filter { "\($0.site).\($0.name)" == name }
        let matches = qualified.isEmpty ? locations.filter { $0.name == name } : qualified
        guard let location = matches.first else {
            let known = locations.map { "\($0.site).\($0.name)" }.joined(separator: ", ")
            throw Refusal("'\(name)' is not a PROCESSING location; staging goes to one of: \(known.isEmpty ? "none is configured" : known)")
        }
        guard matches.count == 1 else {
            throw Refusal("'\(name)' names a PROCESSING location at several sites; say which: \(matches.map { "\($0.site).\($0.name)" }.joined(separator: ", "))")
        }
        guard location.active else { throw Refusal("the PROCESSING location \(location.name) is not active; ask your administrator") }
        return location
    }

    /// The unix account must be in one of the location's staging groups.
    public static func checkGroups(_ location: StagingLocation, account: String, groups: [String]) throws {
        guard Set(location.allowedGroups).isDisjoint(with: groups) else { return }
        let rule = location.allowedGroups.isEmpty ? "allows no group yet (an administrator sets staging.groups in the topology)"
            : "allows the groups \(location.allowedGroups.joined(separator: ", "))"
        throw Refusal("\(location.name) \(rule); \(account) is in \(groups.joined(separator: ", ")). Ask your administrator to add you to one of them")
    }

    /// What the selection stages: every name must be known and something must match.
    public static func select(_ selection: StagingSelection, _ db: OpsDB) async throws -> (packages: [SelectedPackage], bytes: Int64) {
        guard !selection.isEmpty else { throw Refusal("the selection is empty: name observations, packages, instruments or a time range") }
        let unknown = try await db.unknownNames(in: selection)
        guard unknown.isEmpty else { throw Refusal("\(unknown.description): check the names with the observatory's catalogue") }
        let selected = try await db.resolveSelection(selection)
        guard !selected.isEmpty else { throw Refusal("\(selection.summary) matches no files") }
        return (selected, selected.reduce(Int64(0)) { $0 + $1.stagedBytes })
    }

    /// The location's quota per user: what `username`'s open requests there hold (ACCEPTED,
    /// STAGING, READY or FAILED, by the bytes counted when each was accepted), plus this request.
    public static func checkQuota(_ location: StagingLocation, username: String, bytes: Int64, _ db: OpsDB) async throws {
        guard let quota = location.quotaBytesPerUser else { return }
        let held = try await db.openStagingBytes(username: username, locationID: location.id)
        guard held + bytes > quota else { return }
        throw Refusal("quota exceeded at \(location.name): this request needs \(formatByteCount(bytes)), your open requests hold \(formatByteCount(held)) of \(formatByteCount(quota)); release requests you are done with ('ccat stage release ID')")
    }
}
