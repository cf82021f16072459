import Foundation

/// A storage problem, naming the location and object and saying what went wrong.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// The network or the server failed; retrying later may work.
        case transport
        /// The server refused the request (permissions, missing bucket, bad request).
        case rejected
        /// Credentials are missing or unreadable.
        case credentials
        /// The object is not there.
        case notFound
        /// Content differs from its recorded size or checksum.
        case checksumMismatch
        /// A path would leave the location's root, or is not a valid object name.
        case invalidPath
        /// A local file could not be read or written.
        case io
        /// The storage type or method is not supported by this version.
        case unsupported
    }

    public var kind: Kind
    /// The location (or endpoint/bucket) the problem is with.
    public var location: String
    public var object: String?
    public var problem: String

    public init(kind: Kind, location: String, object: String? = nil, problem: String) {
        self.kind = kind
        self.location = location
        self.object = object
        self.problem = problem
    }

    public var description: String {
        "\(location)\(object.map { " \($0.debugDescription)" } ?? ""): \(problem)"
    }
}
