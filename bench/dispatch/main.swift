// Dispatch benchmark: N small pending operations through the dispatcher and tracker on the test
// cluster, against the standard way (one sbatch per operation), in the same run.
//
//   ccat-bench-dispatch [--operations N] [--scheduler slurm|local] [--naive-sample N]
//
// Needs the ops database server (scripts/local-postgres.sh) and, for Slurm, SLURM_CONF
// (scripts/local-slurm.sh). `make bench` starts both. Creates and drops its own database.
import BenchSupport
import Foundation
import Logging
import OpsDB
import Postgres
import Processes
import Scheduling
import Topology

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .error
    return handler
}

let operationCount = Int(argument("--operations", default: "10000")) ?? 10000
let naiveSample = Int(argument("--naive-sample", default: "200")) ?? 200
let environment = ProcessInfo.processInfo.environment
let schedulerKind = BatchSchedulerKind(rawValue: argument("--scheduler", default: environment["SLURM_CONF"] == nil ? "local" : "slurm")) ?? .local
let repository = repositoryDirectory()

let work = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
try await withBenchDatabase { conninfo in
    let connection = try await PostgresConnection.connect(PostgresConfiguration(conninfo: conninfo, applicationName: "ccat-bench"))
    _ = try await Migrator.bundled().migrate(connection)
    _ = try await TopologySync().apply(try TopologyParser.parse(contentsOf: repository.appendingPathComponent("etc/topology.example.yaml").path), to: connection)
    let db = OpsDB(connection)
    guard var queue = try await QueueDiscovery.discover(db).first(where: { $0.operation == .deletion }) else {
        throw BenchError("the example topology has no DELETION queue")
    }
    queue.profile = BatchProfile(partition: schedulerKind == .slurm ? "debug" : nil, timeLimitMinutes: 30, cpus: 1, memoryMB: 32,
                                 maxQueuedJobs: 1000, maxOperationsPerJob: 100)

    // Small operations, as a scan of many small files would create them.
    let insertStart = ContinuousClock.now
    try await connection.execute("""
        INSERT INTO operation (operation_type, queue, data_location_id, size_hint_bytes)
        SELECT 'DELETION', \(queue.name), \(queue.locationID), 4096 FROM generate_series(1, \(operationCount))
        """)
    print("created \(operationCount) pending operations in \(String(format: "%.2f", seconds(since: insertStart))) s")

    let scheduler: any BatchScheduler = schedulerKind == .slurm
        ? SlurmScheduler()
        : try LocalScheduler(stateDirectory: work.appendingPathComponent("local").path)
    // The jobs run /bin/true in place of the runner: the benchmark measures the batch layer.
    let settings = DispatchSettings(jobDirectory: work.appendingPathComponent("jobs").path, runnerPath: "/bin/true",
                                    secondsPerOperation: 0.5, minimumSubmitInterval: .milliseconds(50),
                                    retryPolicy: RetryPolicy(baseDelaySeconds: 3600))
    let dispatcher = Dispatcher(db: db, scheduler: scheduler,
                                renderer: try JobScriptRenderer(builtinDirectory: repository.appendingPathComponent("jobscripts").path),
                                settings: settings)

    let dispatchStart = ContinuousClock.now
    var report = DispatchReport()
    while true {
        let pass = try await dispatcher.dispatch(queue)
        report.add(pass)
        if pass.operationsSubmitted == 0 { break }
    }
    let dispatchSeconds = seconds(since: dispatchStart)
    let latency = try await connection.query("""
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY s) AS p95, max(s) AS max
        FROM (SELECT extract(epoch FROM j.submitted_at - o.created_at)::float8 AS s
              FROM operation o JOIN batch_job j ON j.id = o.batch_job_id WHERE j.submitted_at IS NOT NULL) t
        """).first
    let p50: Double = try latency?["p50"] ?? .nan, p95: Double = try latency?["p95"] ?? .nan, worst: Double = try latency?["max"] ?? .nan

    // Track until every job has ended, one poll every 2 seconds.
    let tracker = JobTracker(db: db, scheduler: scheduler, policy: settings.retryPolicy, lostAfterSeconds: 600)
    let trackStart = ContinuousClock.now
    var polls = 0, activePolls = 0, queries = 0, maxTracked = 0
    while seconds(since: trackStart) < 600 {
        let pass = try await tracker.poll()
        polls += 1
        queries += pass.statusQueries
        maxTracked = max(maxTracked, pass.jobsTracked)
        if pass.jobsTracked == 0 { break }
        activePolls += 1
        try await Task.sleep(for: .seconds(2))
    }
    let trackMinutes = seconds(since: trackStart) / 60

    // The standard way: one sbatch per operation (held, then cancelled), on a sample.
    var naivePerCall = Double.nan
    if schedulerKind == .slurm && naiveSample > 0 {
        let script = work.appendingPathComponent("naive.sh").path
        try "#!/bin/bash\n#SBATCH --job-name=ccat_bench_naive\n#SBATCH --partition=debug\n#SBATCH --output=/dev/null\n/bin/true\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let runner = SubprocessRunner()
        let naiveStart = ContinuousClock.now
        for _ in 0..<naiveSample {
            let result = try await runner.run("sbatch", ["--parsable", "--hold", script], environment: nil, timeout: .seconds(30))
            guard result.succeeded else { throw BenchError("naive sbatch failed: \(result.stderr)") }
        }
        naivePerCall = seconds(since: naiveStart) / Double(naiveSample)
        _ = try await runner.run("scancel", ["--name=ccat_bench_naive"], environment: nil, timeout: .seconds(30))
    }

    let jobs = try await db.batchJobs(limit: 100_000)
    print("""

        dispatch benchmark: \(operationCount) small operations, scheduler \(schedulerKind.rawValue)
          sbatch calls:                 \(report.sbatchCalls) (\(String(format: "%.1f", Double(operationCount) / Double(max(report.sbatchCalls, 1)))) operations per call; goal >= 100)
          batch jobs:                   \(jobs.count), ended: \(jobs.filter { $0.state.isTerminal }.count)
          dispatch wall time:           \(String(format: "%.2f", dispatchSeconds)) s
          pending -> submitted:         p50 \(String(format: "%.2f", p50)) s, p95 \(String(format: "%.2f", p95)) s, max \(String(format: "%.2f", worst)) s
          status queries:               \(queries) in \(activePolls) poll cycles with active jobs (\(String(format: "%.2f", Double(queries) / Double(max(activePolls, 1)))) per cycle, up to \(maxTracked) jobs each; goal 1)
          status queries per minute:    \(String(format: "%.1f", Double(queries) / max(trackMinutes, 1e-9))) at one poll per 2 s
        """)
    if !naivePerCall.isNaN {
        let naiveTotal = naivePerCall * Double(operationCount)
        print("""
              one sbatch per operation:     \(String(format: "%.1f", naivePerCall * 1000)) ms per call (measured on \(naiveSample) held jobs) -> \(operationCount) calls, ~\(String(format: "%.0f", naiveTotal)) s
              ratio (standard / ccat):      sbatch calls \(String(format: "%.0f", Double(operationCount) / Double(max(report.sbatchCalls, 1))))x, submit time \(String(format: "%.1f", naiveTotal / dispatchSeconds))x
            """)
    }
    await connection.close()
}
try? FileManager.default.removeItem(at: work)
