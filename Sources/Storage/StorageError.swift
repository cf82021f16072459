import Archiving
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
        /// The file system is full or a quota is used up: the work waits for space to be freed.
        case noSpace
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

extension StorageError {
    /// A local file problem, as a storage problem of `location`'s object.
    public init(_ error: ArchiveError, location: String, object: String?) {
        let kind: Kind = switch error.kind {
        case .notFound: .notFound
        case .symbolicLink, .unsafeMember: .invalidPath
        case .noSpace: .noSpace
        case .checksumMismatch: .checksumMismatch
        case .io, .format: .io
        }
        self.init(kind: kind, location: location, object: object, problem: "\(error.path): \(error.problem)")
    }
}
