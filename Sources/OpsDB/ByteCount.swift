import Foundation

// Kept in OpsDB, not in the command line's output helpers, because the staging policy writes it
// into the refusals the daemon stores for `ccat stage status`.

/// "1.5 GB": decimal units, one decimal, for people.
public func formatByteCount(_ count: Int64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"]
    var value = Double(count)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f", value) + " " + units[unit]
}
