import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Variables a submission adds to a local job's environment (the runner's job secret): kept from
// submission to start in a file only the daemon's user can read, never in the script or the job's
// record, and removed once the job has started with them.
extension LocalScheduler {
    func environmentPath(_ id: Int) -> String { "\(jobDirectory(id))/environment" }

    func saveEnvironment(_ variables: [String: String], of id: Int) throws {
        guard !variables.isEmpty else { return }
        let path = environmentPath(id)
        let data = try JSONEncoder().encode(variables)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw LocalSchedulerError(message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count, fsync(fd) == 0 else {
            throw LocalSchedulerError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The variables saved for job `id`, removing them; none when there are none.
    func takeEnvironment(of id: Int) throws -> [String: String] {
        let path = environmentPath(id)
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        defer { unlink(path) }
        do {
            return try JSONDecoder().decode([String: String].self, from: data)
        } catch {
            throw LocalSchedulerError(message: "the saved environment of local job \(id) (\(path)) is damaged: \(error)")
        }
    }
}
