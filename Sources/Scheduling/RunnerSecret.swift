import Crypto
import Foundation
import OpsDB

/// A batch job's runner secret: 256 random bits, given to the job in its environment only
/// (`CCAT_JOB_SECRET`); the ops database keeps its SHA-256. A runner connecting with a role in
/// `ccat_runner` presents it as the session setting `ccat.job_secret` and may then act only on that
/// job's operations, only while the job lives.
public struct RunnerSecret: Sendable {
    public static let variable = JobSecret.variable

    public let value: String

    public init() {
        value = SymmetricKey(size: .bits256).withUnsafeBytes { Self.hex($0) }
    }

    public init(value: String) { self.value = value }

    public var digest: String { Self.digest(of: value) }

    public static func digest(of value: String) -> String {
        SHA256.hash(data: Data(value.utf8)).withUnsafeBytes { hex($0) }
    }

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
