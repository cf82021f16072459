import CGlibcExtras
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid by its owner. Foundation's
/// `Process` is not used to wait: on Linux its `waitUntilExit` can miss the exit and wait forever
/// (seen here: the child a zombie, the waiter still in its run loop), and it waits for the child's
/// whole session. Nothing the parent has open beyond the three standard streams reaches the child,
/// and the child starts with no signal blocked, whatever the spawning thread had, and every
/// standard signal but SIGHUP at its default action. Dispatch's threads block nearly every signal;
/// the Swift runtime ignores SIGPIPE and SIGXFSZ; the daemon (service-lifecycle) and the runner
/// ignore SIGTERM, SIGINT and SIGUSR2 to route them to dispatch sources. A child inheriting any of
/// that could not be stopped with SIGTERM (rsync at a runner's walltime warning, a job script's
/// trap, moto_server started by a test) nor end quietly at a closed pipe. SIGHUP stays ignored
/// where it was, as `nohup` means it for the whole tree.
public final class ChildProcess: @unchecked Sendable {
    /// Where a standard stream of the child goes.
    public enum Stream: Sendable {
        case null
        /// A descriptor of the parent (duplicated into the child; the parent keeps its own).
        case descriptor(Int32)
    }

    public let pid: pid_t
    public let command: String
    private let lock = NSLock()
    private var exitStatus: Int32?
    /// The processes the child was seen to start (`noteDescendants`).
    private var seen = Set<Descendant>()

    private init(pid: pid_t, command: String) {
        self.pid = pid
        self.command = command
    }

    /// Starts `executable` (a path) with `arguments`; `environment` nil inherits ours.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
                             stdin: Stream = .null, stdout: Stream = .null, stderr: Stream = .null) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (stream, target, mode) in [(stdin, Int32(0), O_RDONLY), (stdout, 1, O_WRONLY), (stderr, 2, O_WRONLY)] {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", mode, 0)
            case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        ccat_spawn_close_from(&actions, 3)
        if let directory { ccat_spawn_chdir(&actions, directory) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t(), toDefault = sigset_t()
        sigemptyset(&noSignals)
        sigemptyset(&toDefault)
        for number in 1..<Int32(32) where ![SIGHUP, SIGKILL, SIGSTOP].contains(number) { sigaddset(&toDefault, number) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &toDefault)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        let command = ([executable] + arguments).joined(separator: " ")
        guard result == 0 else {
            // posix_spawn says ENOENT for a missing working directory as for a missing program.
            var isDirectory: ObjCBool = false
            if let directory, !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw CommandRunError(kind: .failedToLaunch, command: command, detail: "its working directory \(directory) does not exist")
            }
            throw CommandRunError(kind: result == ENOENT ? .notFound : .failedToLaunch, command: command, detail: String(cString: strerror(result)))
        }
        return ChildProcess(pid: pid, command: command)
    }

    /// Runs `executable` to its end; its exit status and everything it wrote to standard output
    /// and standard error. Both pipes are read to the end before the wait, so a chatty child
    /// cannot block on a full pipe.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           directory: String? = nil) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let out = try makePipe(), err = try makePipe()
        let process: ChildProcess
        do {
            process = try spawn(executable, arguments, environment: environment, directory: directory,
                                stdout: .descriptor(out.write), stderr: .descriptor(err.write))
        } catch {
            for fd in [out.read, out.write, err.read, err.write] { close(fd) }
            throw error
        }
        close(out.write)
        close(err.write)
        let errReader = FileHandle(fileDescriptor: err.read, closeOnDealloc: true)
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = errReader.readDataToEndOfFile()
            group.leave()
        }
        let outData = FileHandle(fileDescriptor: out.read, closeOnDealloc: true).readDataToEndOfFile()
        group.wait()
        return (try process.wait(), outData, errData)
    }

    /// A pipe whose ends close on exec (a child gets one only as a standard stream).
    static func makePipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            throw CommandRunError(kind: .failedToLaunch, command: "pipe", detail: String(cString: strerror(errno)))
        }
        for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// The exit status once the child has ended (128 + the signal if a signal ended it), nil while
    /// it runs. Reaps it.
    public func poll() throws -> Int32? {
        try lock.withLock { () throws -> Int32? in
            if let exitStatus { return exitStatus }
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid { break }
                if result == 0 { return nil }
                guard errno == EINTR else {
                    throw CommandRunError(kind: .failedToLaunch, command: command, detail: "waitpid: \(String(cString: strerror(errno)))")
                }
            }
            // WIFEXITED / WEXITSTATUS, else 128 + WTERMSIG.
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            exitStatus = code
            return code
        }
    }

    /// Blocks until the child ends; its exit status as `poll` gives it. (Polls every 10 ms, so a
    /// thread may signal or poll the child meanwhile.)
    @discardableResult
    public func wait() throws -> Int32 {
        while true {
            if let status = try poll() { return status }
            usleep(10_000)
        }
    }

    public var isRunning: Bool { (try? poll()) == nil }

    /// Sends a signal unless the child was already reaped (its pid may belong to another process then).
    public func signal(_ signal: Int32) {
        lock.withLock {
            if exitStatus == nil { _ = kill(pid, signal) }
        }
    }

    /// A process the child started, known by pid and start time (a pid alone may be reused).
    struct Descendant: Hashable {
        let pid: pid_t
        let startTime: UInt64
    }

    /// Looks up, through /proc, the processes the child started and those they started, and
    /// remembers them for `terminate`; returns how many are known. A process whose parent ended is
    /// handed to init and cannot be found this way any more, so a caller that may have to stop the
    /// child calls this now and then while it runs.
    @discardableResult
    public func noteDescendants() -> Int {
        var found = Set<Descendant>()
        if isRunning {
            let children = Dictionary(grouping: ProcessStat.all(), by: \.parent)
            var queue = [pid]
            while let next = queue.popLast() {
                for child in children[next] ?? [] where found.insert(Descendant(pid: child.pid, startTime: child.startTime)).inserted {
                    queue.append(child.pid)
                }
            }
        }
        return lock.withLock {
            seen.formUnion(found)
            return seen.count
        }
    }

    /// How `terminate` went.
    public struct Termination: Sendable {
        /// Something was still running `grace` after SIGTERM and got SIGKILL.
        public var killed: Bool
        /// Pids still running 2 s after SIGKILL (nothing, normally).
        public var survivors: [pid_t]
    }

    /// Ends the child and every process it was seen to start: SIGTERM, then SIGKILL to whatever
    /// still runs `grace` later. Returns once none of them runs (or 2 s after the SIGKILL), so
    /// that nothing the child started can still write when the caller goes on.
    public func terminate(grace: Duration) async -> Termination {
        noteDescendants()
        func running() -> Set<Descendant> {
            lock.withLock { seen }.filter { process in
                ProcessStat.read(process.pid).map { $0.isAlive && $0.startTime == process.startTime } ?? false
            }
        }
        func send(_ signal: Int32) {
            self.signal(signal)
            for process in running() { _ = kill(process.pid, signal) }
        }
        func waitUntilEnded(within limit: Duration) async -> Bool {
            let deadline = ContinuousClock.now + limit
            while true {
                noteDescendants()
                if !isRunning && running().isEmpty { return true }
                if ContinuousClock.now >= deadline { return false }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        send(SIGTERM)
        if await waitUntilEnded(within: grace) { return Termination(killed: false, survivors: []) }
        send(SIGKILL)
        _ = await waitUntilEnded(within: .seconds(2))
        return Termination(killed: true, survivors: (isRunning ? [pid] : []) + running().map(\.pid).sorted())
    }
}
