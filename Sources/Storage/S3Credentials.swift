import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Keys for S3, read from where the topology says: `env:PREFIX` reads `PREFIX_ACCESS_KEY_ID` and
/// `PREFIX_SECRET_ACCESS_KEY` (and `PREFIX_SESSION_TOKEN` if set); `file:/path` reads
/// `aws_access_key_id` / `aws_secret_access_key` (`aws_session_token`) lines, as in an AWS
/// credentials file, from a file only its owner can read.
public struct S3Credentials: Sendable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public static func load(source: String, location: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials {
        func missing(_ problem: String) -> StorageError {
            StorageError(kind: .credentials, location: location, problem: problem)
        }
        if source.hasPrefix("env:") {
            let prefix = String(source.dropFirst(4))
            guard let key = environment["\(prefix)_ACCESS_KEY_ID"], !key.isEmpty,
                  let secret = environment["\(prefix)_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw missing("set \(prefix)_ACCESS_KEY_ID and \(prefix)_SECRET_ACCESS_KEY in the environment of the daemon and the runner (credentials: \(source))")
            }
            return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: environment["\(prefix)_SESSION_TOKEN"])
        }
        guard source.hasPrefix("file:") else {
            throw missing("credentials must be 'env:PREFIX' or 'file:/path', not '\(source)'")
        }
        let path = String(source.dropFirst(5))
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw missing("cannot read the credentials file \(path): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw missing("the credentials file \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); run 'chmod 600 \(path)'")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw missing("cannot read the credentials file \(path)")
        }
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), !trimmed.hasPrefix("["), let equals = trimmed.firstIndex(of: "=") else { continue }
            let name = trimmed[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            if values[name] == nil { values[name] = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces) }
        }
        guard let key = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
            throw missing("the credentials file \(path) needs 'aws_access_key_id = ...' and 'aws_secret_access_key = ...' lines")
        }
        return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"])
    }
}

/// Where and how objects are sent.
public struct S3Settings: Sendable {
    /// Objects up to this size go in one PUT; larger ones in parts of this size.
    public var partSize: Int
    /// Parts sent at the same time.
    public var parallelParts: Int
    /// Tries per request before a transient failure (network, 5xx, throttling) is final.
    public var attempts: Int
    /// First wait between tries; doubled each time.
    public var retryDelaySeconds: Double
    /// S3's additional checksums (SHA-256): the server checks every part and the whole object
    /// against the SHA-256 we send and keeps it, and HEAD returns it. Off for servers without them.
    public var checksums: Bool

    public init(partSize: Int = 16 << 20, parallelParts: Int = 8, attempts: Int = 5, retryDelaySeconds: Double = 0.5,
                checksums: Bool = true) {
        self.partSize = max(partSize, 5 << 20)
        self.parallelParts = max(parallelParts, 1)
        self.attempts = max(attempts, 1)
        self.retryDelaySeconds = retryDelaySeconds
        self.checksums = checksums
    }
}
