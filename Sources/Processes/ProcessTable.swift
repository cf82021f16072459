import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process as `/proc/<pid>/stat` describes it. A pid alone may name another process once the
/// first has ended, so a process is known by its pid and its start time together.
public struct ProcessStat: Sendable {
    public var pid: pid_t
    /// R, S, D, Z (ended, not yet reaped), X (gone), ...
    public var state: Character
    public var parent: pid_t
    /// Clock ticks after boot.
    public var startTime: UInt64

    /// nil when the process does not exist (any more).
    public static func read(_ pid: pid_t) -> ProcessStat? {
        // Decoded leniently: a command name need not be valid UTF-8.
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After the command (which may hold blanks and parentheses): state is field 3, the parent
        // field 4, the start time field 22, so indexes 0, 1 and 19 here.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]), let start = UInt64(fields[19]) else { return nil }
        return ProcessStat(pid: pid, state: state, parent: parent, startTime: start)
    }

    /// Every process this one may see.
    public static func all() -> [ProcessStat] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.compactMap { read($0) }
    }

    /// Running or stopped, not ended.
    public var isAlive: Bool { state != "Z" && state != "X" }
}
