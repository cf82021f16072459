import CGlibcExtras
import Foundation
import Logging
import OpsDB

#if canImport(Glibc)
import Glibc
import Processes
#endif

/// The embedded batch scheduler: runs the same job scripts as Slurm would, as child processes of
/// this machine, with a concurrency limit per queue (job name), and reports Slurm's state names.
///
/// All state lives in files under `stateDirectory` (one directory per job), guarded by a lock file,
/// so the daemon can restart while jobs run and `ccat jobs cancel` works from another process. Each
/// job runs in its own session under a small wrapper shell that records the job's pid and, when the
/// script ends, its exit status. Time limits, the `--signal` warning and cancellation are enforced
/// whenever the scheduler is asked anything (the daemon's tracker asks every cycle).
public actor LocalScheduler: BatchScheduler {
    public nonisolated var kind: BatchSchedulerKind { .local }
    public nonisolated let stateDirectory: String
    /// Jobs of one name (queue) that may run at once; `defaultConcurrency` for names not listed.
    public nonisolated let concurrency: [String: Int]
    public nonisolated let defaultConcurrency: Int
    /// Between SIGTERM and SIGKILL when a job is cancelled or reaches its time limit (Slurm's KillWait).
    public nonisolated let killWait: Duration
    let logger: Logger
    let hostname: String

    public init(stateDirectory: String, concurrency: [String: Int] = [:],
                defaultConcurrency: Int = max(1, ProcessInfo.processInfo.activeProcessorCount),
                killWait: Duration = .seconds(5), logger: Logger = Logger(label: "ccat.local-scheduler")) throws {
        self.stateDirectory = stateDirectory
        self.concurrency = concurrency
        self.defaultConcurrency = max(1, defaultConcurrency)
        self.killWait = killWait
        self.logger = logger
        self.hostname = ProcessInfo.processInfo.hostName
        do {
            try FileManager.default.createDirectory(atPath: "\(stateDirectory)/jobs", withIntermediateDirectories: true)
        } catch {
            throw LocalSchedulerError(message: "cannot create the local scheduler's state directory \(stateDirectory)/jobs: \(error.localizedDescription)")
        }
    }

    // MARK: BatchScheduler

    public func submit(scriptPath: String, cluster: String?, environment: [String: String]) async throws -> SubmittedJob {
        if let cluster {
            throw SubmissionError(transient: false, ambiguous: false, message: "the local scheduler has no clusters, but the job asks for cluster '\(cluster)'; remove 'cluster' from the submission profile or use Slurm")
        }
        let script: String
        do {
            script = try String(contentsOfFile: scriptPath, encoding: .utf8)
        } catch {
            throw SubmissionError(transient: false, ambiguous: false, message: "cannot read job script \(scriptPath): \(error.localizedDescription)")
        }
        let options: SbatchScriptOptions
        do {
            options = try SbatchScriptOptions.parse(script: script)
        } catch {
            throw SubmissionError(transient: false, ambiguous: false, message: "\(scriptPath): \(error)")
        }
        return try withLock {
            let id = try allocateJobID()
            let name = options.jobName ?? URL(fileURLWithPath: scriptPath).lastPathComponent
            let record = LocalJobRecord(
                id: id, name: name, comment: options.comment, script: scriptPath,
                stdout: SbatchScriptOptions.expand(options.output ?? "slurm-%j.out", jobID: String(id), jobName: name),
                stderr: SbatchScriptOptions.expand(options.error ?? options.output ?? "slurm-%j.out", jobID: String(id), jobName: name),
                workingDirectory: FileManager.default.currentDirectoryPath,
                timeLimitSeconds: options.timeLimitSeconds, warningSignal: options.warningSignal,
                warningSeconds: options.warningSeconds, state: .pending, submittedAt: Date())
            try save(record)
            try saveEnvironment(environment, of: id)
            logger.info("local job submitted", metadata: ["job": "\(id)", "name": "\(name)", "script": "\(scriptPath)"])
            try advance()
            return SubmittedJob(jobID: String(id), cluster: nil)
        }
    }

    public func statuses(of jobs: [SubmittedJob]) async throws -> [String: SchedulerJobStatus] {
        try withLock {
            try advance()
            var result: [String: SchedulerJobStatus] = [:]
            for job in jobs {
                guard let id = Int(job.jobID), let record = try load(id) else { continue }
                result[job.jobID] = status(of: record)
            }
            return result
        }
    }

    public func lookup(submitToken: String, jobName: String, cluster: String?) async throws -> SchedulerJobStatus? {
        try withLock {
            try advance()
            return try allRecords().last { $0.name == jobName && $0.comment.flatMap(SlurmParsing.token) == submitToken }.map(status(of:))
        }
    }

    public func cancel(_ job: SubmittedJob) async throws {
        try withLock {
            guard let id = Int(job.jobID), var record = try load(id) else {
                throw SubmissionError(transient: false, ambiguous: false, message: "local job \(job.jobID) does not exist")
            }
            switch record.state {
            case .pending:
                record.state = .cancelled
                record.endedAt = Date()
                record.reason = "cancelled before it started"
                try save(record)
            case .running where record.intent == nil:
                record.intent = .cancel
                record.terminatedAt = Date()
                try save(record)
                signalGroup(record, SIGTERM)
            default:
                break
            }
            try advance()
        }
    }

    /// Advances every job (ends, time limits, starts) without a query; for a daemon loop or tests.
    public func poll() throws {
        try poll(now: Date())
    }

    /// `poll()` as if the clock said `now`: for tests of polls that come late.
    func poll(now: Date) throws {
        try withLock { try advance(now: now) }
    }

    // MARK: State machine

    /// Called with the lock held: finishes ended jobs, enforces time limits, starts pending jobs.
    func advance(now: Date = Date()) throws {
        var records = try allRecords()
        for index in records.indices where records[index].state == .running {
            if try update(&records[index], now: now) { try save(records[index]) }
        }
        var running: [String: Int] = [:]
        for record in records where record.state == .running { running[record.name, default: 0] += 1 }
        for index in records.indices where records[index].state == .pending {
            let name = records[index].name
            guard running[name, default: 0] < (concurrency[name] ?? defaultConcurrency) else { continue }
            try start(&records[index])
            try save(records[index])
            running[name, default: 0] += 1
        }
    }

    /// One running job: has it ended, does it need a signal? Returns whether the record changed.
    func update(_ record: inout LocalJobRecord, now: Date) throws -> Bool {
        let directory = jobDirectory(record.id)
        if let exitText = try? String(contentsOfFile: "\(directory)/exit", encoding: .utf8) {
            let status = Int(exitText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            finish(&record, status: status, now: now)
            return true
        }
        var changed = false
        if record.pid == nil, let pids = try? String(contentsOfFile: "\(directory)/pid", encoding: .utf8) {
            let numbers = pids.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            if numbers.count == 2 {
                record.pid = numbers[0]
                record.scriptPid = numbers[1]
                record.pidStartTime = Self.processStartTime(numbers[0])
                changed = true
            }
        }
        guard let pid = record.pid else {
            if let started = record.startedAt, now.timeIntervalSince(started) > 30 {
                record.state = .failed
                record.reason = "the job's wrapper never started (see \(record.stderr))"
                record.endedAt = now
                return true
            }
            return changed
        }
        guard Self.isAlive(pid, startTime: record.pidStartTime) else {
            // The wrapper is gone without writing an exit status: killed with its group (cancel or
            // time limit), or by someone else.
            finish(&record, status: nil, now: now)
            return true
        }
        if let started = record.startedAt, let limit = record.timeLimitSeconds, limit != Int.max {
            let elapsed = now.timeIntervalSince(started)
            if let signal = record.warningSignal, let margin = record.warningSeconds, !record.warned,
               elapsed >= Double(limit - margin), let script = record.scriptPid {
                kill(script, signal)
                record.warned = true
                record.warnedAt = now
                changed = true
                logger.info("local job warned before its time limit", metadata: ["job": "\(record.id)", "signal": "\(signal)"])
            }
            // The limit ends the job; but a warning sent late (polls come only so often) moves
            // the end by as much as it was late, so the job's cleanup keeps the time it asked for.
            var end = Double(limit)
            if let warnedAt = record.warnedAt, let margin = record.warningSeconds {
                end += max(0, warnedAt.timeIntervalSince(started) - Double(max(0, limit - margin)))
            }
            if elapsed >= end, record.intent == nil {
                record.intent = .timeLimit
                record.terminatedAt = now
                signalGroup(record, SIGTERM)
                changed = true
            }
        }
        if record.intent != nil, let terminated = record.terminatedAt,
           now.timeIntervalSince(terminated) >= Double(killWait.components.seconds), !record.killed {
            signalGroup(record, SIGKILL)
            record.killed = true
            changed = true
        }
        return changed
    }

    func finish(_ record: inout LocalJobRecord, status: Int?, now: Date) {
        record.endedAt = now
        if let status {
            // A shell reports death by signal N as 128+N; Slurm shows that as exit 0, signal N.
            record.exitCode = status > 128 ? 0 : status
            record.signal = status > 128 ? status - 128 : nil
        }
        switch record.intent {
        case .cancel?: record.state = .cancelled
        case .timeLimit?: record.state = .timeout
        case nil:
            record.state = status == 0 ? .completed : .failed
            if status == nil { record.reason = "the job's processes ended without an exit status (killed from outside the scheduler)" }
        }
        logger.info("local job ended", metadata: ["job": "\(record.id)", "state": "\(record.state.rawValue)", "exit": "\(status.map(String.init) ?? "-")"])
    }

    /// The wrapper: records its pid and the script's, runs the script with the job's output files,
    /// and writes the exit status when the script ends. Arguments: job dir, script, stdout, stderr,
    /// working directory.
    static let wrapper = """
        cd "$5" || exit 1
        exec </dev/null >>"$3" 2>>"$4"
        bash "$2" &
        child=$!
        echo "$$ $child" > "$1/pid.tmp" && mv "$1/pid.tmp" "$1/pid"
        wait "$child"
        status=$?
        echo "$status" > "$1/exit.tmp" && mv "$1/exit.tmp" "$1/exit"
        """

    func start(_ record: inout LocalJobRecord) throws {
        let directory = jobDirectory(record.id)
        for path in [record.stdout, record.stderr] {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_JOB_ID"] = String(record.id)
        environment["SLURM_JOB_NAME"] = record.name
        environment["CCAT_LOCAL_JOB_ID"] = String(record.id)
        environment.merge(try takeEnvironment(of: record.id)) { $1 }
        record.startedAt = Date()
        // `setsid -f` detaches the wrapper into its own session; the shell in between exits at once,
        // so the wrapper outlives this process and needs no reaping by it.
        let arguments = ["/bin/sh", "-c", "setsid -f /bin/sh -c \"$0\" ccat-local-job \"$@\"",
                         Self.wrapper, directory, record.script, record.stdout, record.stderr, record.workingDirectory]
        do {
            let status = try spawnAndWait(arguments, environment: environment)
            guard status == 0 else {
                record.state = .failed
                record.reason = "setsid could not start the job (status \(status))"
                record.endedAt = Date()
                return
            }
        } catch {
            record.state = .failed
            record.reason = "\(error)"
            record.endedAt = Date()
            return
        }
        record.state = .running
        logger.info("local job started", metadata: ["job": "\(record.id)", "name": "\(record.name)"])
    }

    /// Runs the short-lived launcher to its end, standard streams on /dev/null.
    func spawnAndWait(_ arguments: [String], environment: [String: String]) throws -> Int32 {
        try ChildProcess.spawn(arguments[0], Array(arguments.dropFirst()), environment: environment).wait()
    }

    func signalGroup(_ record: LocalJobRecord, _ signal: Int32) {
        guard let pid = record.pid, Self.isAlive(pid, startTime: record.pidStartTime) else { return }
        if signal == SIGTERM, let script = record.scriptPid { kill(script, SIGCONT) }
        kill(-pid, signal)
    }

    func status(of record: LocalJobRecord) -> SchedulerJobStatus {
        SchedulerJobStatus(jobID: String(record.id), state: record.state, rawState: record.state.rawValue,
                           exitCode: record.exitCode, signal: record.signal,
                           node: record.state == .pending ? nil : hostname, reason: record.reason,
                           submitToken: record.comment.flatMap(SlurmParsing.token))
    }

    // MARK: Processes

    /// Field 22 of /proc/PID/stat (start time in clock ticks), to tell a reused pid from ours.
    static func processStartTime(_ pid: Int32) -> UInt64? {
        ProcessStat.read(pid)?.startTime
    }

    static func isAlive(_ pid: Int32, startTime: UInt64?) -> Bool {
        guard let process = ProcessStat.read(pid), process.isAlive else { return false }
        return startTime.map { $0 == process.startTime } ?? true
    }

    // MARK: Files

    func jobDirectory(_ id: Int) -> String { "\(stateDirectory)/jobs/\(id)" }

    /// The next id: one more than the highest job directory, claimed with mkdir so two processes
    /// never take the same one.
    func allocateJobID() throws -> Int {
        var id = (try jobIDs().max() ?? 0) + 1
        while mkdir(jobDirectory(id), 0o755) != 0 {
            guard errno == EEXIST else {
                throw LocalSchedulerError(message: "cannot create \(jobDirectory(id)): \(String(cString: strerror(errno)))")
            }
            id += 1
        }
        return id
    }

    func jobIDs() throws -> [Int] {
        try FileManager.default.contentsOfDirectory(atPath: "\(stateDirectory)/jobs").compactMap { Int($0) }
    }

    func allRecords() throws -> [LocalJobRecord] {
        try jobIDs().sorted().compactMap { try load($0) }
    }

    func load(_ id: Int) throws -> LocalJobRecord? {
        let path = "\(jobDirectory(id))/job.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(LocalJobRecord.self, from: data)
        } catch {
            throw LocalSchedulerError(message: "local job record \(path) is damaged: \(error)")
        }
    }

    func save(_ record: LocalJobRecord) throws {
        let path = "\(jobDirectory(record.id))/job.json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try encoder.encode(record).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw LocalSchedulerError(message: "cannot write local job record \(path): \(error.localizedDescription)")
        }
    }

    /// Runs `body` holding an exclusive lock on the state directory (flock, so across processes).
    func withLock<T>(_ body: () throws -> T) throws -> T {
        let path = "\(stateDirectory)/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw LocalSchedulerError(message: "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw LocalSchedulerError(message: "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
        }
        return try body()
    }
}

public struct LocalSchedulerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One local job, as stored in `jobs/<id>/job.json`.
struct LocalJobRecord: Codable, Sendable {
    enum Intent: String, Codable { case cancel, timeLimit }

    var id: Int
    var name: String
    var comment: String?
    var script: String
    var stdout: String
    var stderr: String
    var workingDirectory: String
    var timeLimitSeconds: Int?
    var warningSignal: Int32?
    var warningSeconds: Int?
    var state: BatchJobState
    var reason: String?
    var exitCode: Int?
    var signal: Int?
    var submittedAt: Date
    var startedAt: Date?
    var endedAt: Date?
    var pid: Int32?
    var scriptPid: Int32?
    var pidStartTime: UInt64?
    var intent: Intent?
    var terminatedAt: Date?
    var warned = false
    /// When the warning signal went (absent in records written before it was kept).
    var warnedAt: Date?
    var killed = false
}
