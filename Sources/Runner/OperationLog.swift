import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One log file per operation, next to the batch job's logs; later attempts append to it.
public final class OperationLog: @unchecked Sendable {
    public let path: String
    private let handle: FileHandle
    private let lock = NSLock()

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw InvalidOperation(description: "cannot open the operation log \(path): \(String(cString: strerror(errno)))")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// A timestamped line. A full or vanished log disk must not fail the data operation itself,
    /// so a failed write is reported on standard error instead.
    public func write(_ line: String) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        lock.withLock {
            do {
                try handle.write(contentsOf: Data("\(stamp) \(line)\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("ccat-runner: cannot write \(path): \(error)\n".utf8))
            }
        }
    }
}
