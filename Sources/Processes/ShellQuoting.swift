/// Quotes a value for a POSIX shell: the result is always one word, taken literally, whatever the
/// value holds (spaces, quotes, `$(...)`, backticks, `;`, newlines).
public func shellQuote(_ value: String) -> String {
    "'" + value.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}
