import Foundation
import OpsDB

/// The progress of a staging request as one line: a bar with `\r` redraws on a terminal, plain
/// lines without any control character in a log.
public struct StagingProgressLine: Sendable {
    public var isTerminal: Bool
    public var width: Int

    public init(isTerminal: Bool, width: Int = 30) {
        self.isTerminal = isTerminal
        self.width = width
    }

    /// "STAGING  3/10 packages  1.2 GB of 4.0 GB  150.0 MB/s  about 20 s left".
    public func text(status: StagingRequestStatus, progress: StagingProgress?, reason: String?, now: Date = Date()) -> String {
        var parts = [status.rawValue]
        if let progress, progress.packages > 0 {
            parts.append("\(progress.packagesStaged)/\(progress.packages) packages")
            parts.append("\(formatByteCount(progress.bytesStaged)) of \(formatByteCount(progress.bytes))")
            if let started = progress.startedAt, progress.bytesStaged > 0, status == .staging {
                let elapsed = max(now.timeIntervalSince(started), 1)
                let rate = Double(progress.bytesStaged) / elapsed
                parts.append("\(formatByteCount(Int64(rate)))/s")
                let left = Double(progress.bytes - progress.bytesStaged) / max(rate, 1)
                parts.append("about \(Self.duration(left)) left")
            }
        }
        if let reason, status != .ready { parts.append(reason) }
        var line = parts.joined(separator: "  ")
        if isTerminal {
            let fraction = progress.map { $0.bytes > 0 ? Double($0.bytesStaged) / Double($0.bytes) : 0 } ?? 0
            let filled = Int((fraction * Double(width)).rounded(.down))
            line = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] " + line
        }
        return line
    }

    /// What to write for this update: on a terminal the line redrawn in place; in a log a new
    /// line only when the state or the number of staged packages changed (nil: nothing to write),
    /// so a log gets one line per step, not one per poll.
    public func update(_ line: String, status: StagingRequestStatus, progress: StagingProgress?, reason: String?,
                       previousKey: inout String?) -> String? {
        if isTerminal { return "\r" + line + "\u{1B}[K" }
        let key = "\(status.rawValue) \(progress?.packagesStaged ?? -1)/\(progress?.packages ?? -1) \(reason ?? "")"
        if key == previousKey { return nil }
        previousKey = key
        return line + "\n"
    }

    public static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total < 90 { return "\(total) s" }
        if total < 5400 { return "\(Int((Double(total) / 60).rounded())) min" }
        return String(format: "%.1f h", Double(total) / 3600)
    }
}
