import Foundation
import Logging
import OpsDB
import Postgres

/// The buffer chosen for new data at a site, and the better ones that were passed over.
public struct BufferChoice: Sendable {
    public var location: DataLocation
    /// Buffers of higher priority that could not be used, with the reason.
    public var skipped: [(name: String, reason: String)]
}

public struct NoBufferAvailable: Error, Sendable, CustomStringConvertible {
    public var site: String
    public var considered: [(name: String, reason: String)]

    public var description: String {
        if considered.isEmpty { return "site \(site) has no BUFFER location; declare one in the topology" }
        return "site \(site) has no usable buffer: " + considered.map { "\($0.name) \($0.reason)" }.joined(separator: "; ")
            + ". Activate a buffer or free space, then retry"
    }
}

/// The primary buffer of a site is its active BUFFER with the lowest priority number; one that is
/// inactive, unreachable at its last check, or fuller than its threshold is passed over (failover),
/// and the choice is logged.
public enum BufferSelection {
    public static func primaryBuffer(_ db: OpsDB, siteShortName: String, logger: Logger) async throws -> BufferChoice {
        let buffers = try await db.buffers(siteShortName: siteShortName)
        var skipped: [(String, String)] = []
        for (buffer, status) in buffers {
            if let reason = unusable(buffer, status) {
                skipped.append((buffer.name, reason))
                continue
            }
            if !skipped.isEmpty {
                logger.notice("buffer failover", metadata: [
                    "site": "\(siteShortName)", "buffer.chosen": "\(buffer.name)",
                    "buffer.skipped": "\(skipped.map { "\($0.0) (\($0.1))" }.joined(separator: ", "))",
                ])
            } else {
                logger.debug("buffer chosen", metadata: ["site": "\(siteShortName)", "buffer.chosen": "\(buffer.name)"])
            }
            return BufferChoice(location: buffer, skipped: skipped)
        }
        throw NoBufferAvailable(site: siteShortName, considered: skipped)
    }

    static func unusable(_ buffer: DataLocation, _ status: LocationStatus?) -> String? {
        if !buffer.active { return "is inactive" }
        guard let status else { return nil }
        if !status.reachable { return "was unreachable at its last check (\(status.errorMessage ?? "no detail"))" }
        if let total = status.totalBytes, let used = status.usedBytes, total > 0 {
            let percent = Double(used) * 100 / Double(total)
            if percent >= Double(buffer.fillThresholdPercent) {
                return "is \(Int(percent.rounded()))% full (threshold \(buffer.fillThresholdPercent)%)"
            }
        }
        return nil
    }
}
