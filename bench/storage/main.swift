// Storage benchmarks: packaging, unpack+verify and S3 upload, each against the standard tool on the
// same data in the same run, printing the ratio (ours / theirs; below 1 means faster).
//
//   ccat-bench-storage [--total-mb 2048] [--files 200] [--dir /var/tmp] [--s3-endpoint URL] [--rounds 2]
//                      [--only packaging,unpack,s3]
//
// Packaging runs at least three rounds and reports medians; the others report the best of --rounds.
//
// The S3 part needs the S3 test server (scripts/local-s3.sh start; make bench starts it) and aws-cli.
import Archiving
import BenchSupport
import Foundation
import Processes
import Storage

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var totalMB = 2048
    var files = 200
    var directory = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/var/tmp"
    var s3Endpoint = ProcessInfo.processInfo.environment["CCAT_TEST_S3_ENDPOINT"]
    var rounds = 2
    var s3PartSizeMiB = S3Settings().partSize >> 20
    var s3ParallelParts = S3Settings().parallelParts
    /// The benchmarks to run (all when empty). Our archive is always built: the others use it.
    var only: Set<String> = []

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--total-mb": totalMB = Int(iterator.next() ?? "") ?? totalMB
            case "--files": files = Int(iterator.next() ?? "") ?? files
            case "--dir": directory = iterator.next() ?? directory
            case "--s3-endpoint": s3Endpoint = iterator.next()
            case "--rounds": rounds = max(1, Int(iterator.next() ?? "") ?? rounds)
            case "--s3-part-size-mib": s3PartSizeMiB = Int(iterator.next() ?? "") ?? s3PartSizeMiB
            case "--s3-parallel-parts": s3ParallelParts = Int(iterator.next() ?? "") ?? s3ParallelParts
            case "--only": only = Set((iterator.next() ?? "").split(separator: ",").map(String.init))
            default:
                FileHandle.standardError.write(Data("usage: ccat-bench-storage [--total-mb N] [--files N] [--dir DIR] [--s3-endpoint URL] [--rounds N] [--s3-part-size-mib N] [--s3-parallel-parts N] [--only packaging,unpack,s3]\n".utf8))
                exit(2)
            }
        }
    }

    func runs(_ benchmark: String) -> Bool { only.isEmpty || only.contains(benchmark) }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// User and system CPU seconds this process has used.
/// CPU time used so far by this process, or by its children that have ended.
func cpuSeconds(children: Bool = false) -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(children ? RUSAGE_CHILDREN.rawValue : RUSAGE_SELF.rawValue, &usage)
    func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return (value(usage.ru_utime), value(usage.ru_stime))
}

func - (lhs: (user: Double, system: Double), rhs: (user: Double, system: Double)) -> (user: Double, system: Double) {
    (lhs.user - rhs.user, lhs.system - rhs.system)
}

/// The best of `rounds` timings (the first round also warms the page cache for both sides). Each
/// round starts with a `sync`, so no side pays for the dirty pages the one before it left.
func best(_ rounds: Int, _ body: () throws -> Void) rethrows -> Double {
    var result = Double.infinity
    for _ in 0..<rounds {
        sync()
        result = min(result, try seconds(body))
    }
    return result
}

@discardableResult
func shell(_ command: String, environment: [String: String] = [:]) throws -> String {
    let result = try ChildProcess.run("/bin/sh", ["-c", command], environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
    FileHandle.standardError.write(result.stderr)
    guard result.status == 0 else {
        throw NSError(domain: "bench", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: "failed (status \(result.status)): \(command)"])
    }
    return String(decoding: result.stdout, as: UTF8.self)
}


func report(_ name: String, ours: Double, theirs: Double, theirName: String, bytes: Int64, goal: Double) {
    let mbps = { (time: Double) in Double(bytes) / time / 1e6 }
    let ratio = ours / theirs
    print(String(format: "%@: ours %.2f s (%.0f MB/s), %@ %.2f s (%.0f MB/s), ratio %.2f (goal <= %.2f) %@",
                 name, ours, mbps(ours), theirName, theirs, mbps(theirs), ratio, goal, ratio <= goal ? "met" : "NOT met"))
}

let options = Options(CommandLine.arguments)
let work = "\(options.directory)/ccat-bench-storage-\(getpid())"
let input = "\(work)/input"
try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: work) }

// 200 files of pseudo-random bytes (incompressible, like detector data), 2 GB in all.
let fileSize = options.totalMB * (1 << 20) / options.files
print("generating \(options.files) files of \(fileSize) bytes under \(input)")
var block = [UInt8](repeating: 0, count: 1 << 20)
let random = open("/dev/urandom", O_RDONLY)
var inputs: [ArchiveInput] = []
for index in 0..<options.files {
    let path = "\(input)/scan_\(String(format: "%04d", index)).fits"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var remaining = fileSize
    while remaining > 0 {
        _ = block.withUnsafeMutableBytes { read(random, $0.baseAddress, $0.count) }
        let count = min(remaining, block.count)
        _ = block.withUnsafeBytes { write(fd, $0.baseAddress, count) }
        remaining -= count
    }
    close(fd)
    inputs.append(ArchiveInput(source: path, memberPath: "scan_\(String(format: "%04d", index)).fits"))
}
let totalBytes = Int64(fileSize) * Int64(options.files)

// 1. Packaging: one pass writing the archive with SHA-256 of it and of every member, against
//    `tar cf - | tee x.tar | sha256sum` (archive checksum only) and against `cp -r` (the disk
//    floor). Ours fsyncs before the rename, so the standard tools are followed by `sync FILE...`:
//    the same work is "the bytes are on disk". The three take turns, round after round, so a disk
//    whose speed drifts during the run weighs on all alike; each side's median and its CPU time per
//    GB (user + system, its own process or its children) are reported, the CPU being what does not
//    depend on the day's disk.
let ours = "\(work)/ours.tar"
var summary: ArchiveSummary?
struct Side {
    var seconds: [Double] = []
    var cpu = (user: 0.0, system: 0.0)
    var median: Double { BenchSupport.median(seconds) }
    func cpuPerGB(_ bytes: Int64) -> (user: Double, system: Double) {
        let rounds = Double(seconds.count), gigabytes = Double(bytes) / 1e9
        return (cpu.user / rounds / gigabytes, cpu.system / rounds / gigabytes)
    }
}
func measured(_ side: inout Side, children: Bool, _ body: () throws -> Void) rethrows {
    sync()
    let before = cpuSeconds(children: children)
    side.seconds.append(try seconds(body))
    let used = cpuSeconds(children: children) - before
    side.cpu = (side.cpu.user + used.user, side.cpu.system + used.system)
}
var oursSide = Side(), gnuSide = Side(), copySide = Side()
let packagingRounds = options.runs("packaging") ? max(3, options.rounds) : options.rounds
for _ in 0..<packagingRounds {
    // Each side starts from nothing: replacing the last round's archive would free 2 GB inside the timing.
    try? FileManager.default.removeItem(atPath: ours)
    try measured(&oursSide, children: false) { summary = try TarArchive.create(at: ours, inputs: inputs) }
    guard options.runs("packaging") else { continue }
    try measured(&gnuSide, children: true) {
        try shell("tar cf - -C \(shellQuote(input)) . | tee \(shellQuote("\(work)/gnu.tar")) | sha256sum > /dev/null && sync \(shellQuote("\(work)/gnu.tar"))")
    }
    try? FileManager.default.removeItem(atPath: "\(work)/gnu.tar")
    try measured(&copySide, children: true) {
        try shell("cp -r \(shellQuote(input)) \(shellQuote("\(work)/copy")) && sync \(shellQuote("\(work)/copy"))/*")
    }
    try? FileManager.default.removeItem(atPath: "\(work)/copy")
}
let oursCPU = oursSide.cpuPerGB(totalBytes)
print(String(format: "packaging (ours): median %.2f s of %d; CPU %.2f s user + %.2f s system per GB",
             oursSide.median, oursSide.seconds.count, oursCPU.user, oursCPU.system))
if options.runs("packaging") {
    for (name, side) in [("tar|tee|sha256sum", gnuSide), ("cp -r", copySide)] {
        let cpu = side.cpuPerGB(totalBytes)
        print(String(format: "packaging (%@): median %.2f s of %d; CPU %.2f s user + %.2f s system per GB",
                     name, side.median, side.seconds.count, cpu.user, cpu.system))
    }
    report("packaging vs tar|tee|sha256sum (medians)", ours: oursSide.median, theirs: gnuSide.median, theirName: "GNU", bytes: totalBytes, goal: 0.7)
    report("packaging vs cp (medians)", ours: oursSide.median, theirs: copySide.median, theirName: "cp", bytes: totalBytes, goal: 1.2)
}

// 2. Unpack + verify every member against the manifest, against `tar xf` then `sha256sum -c`.
let manifest = summary!.members
try manifest.map { "\($0.sha256)  \($0.path)\n" }.joined().write(toFile: "\(work)/SHA256SUMS", atomically: true, encoding: .utf8)
if options.runs("unpack") {
    let unpackOurs = try best(options.rounds) {
        try? FileManager.default.removeItem(atPath: "\(work)/unpacked")
        _ = try TarArchive.extract(ours, into: "\(work)/unpacked", expected: manifest)
    }
    let unpackGNU = try best(options.rounds) {
        try shell("rm -rf \(shellQuote("\(work)/gnu-unpacked")) && mkdir \(shellQuote("\(work)/gnu-unpacked")) && tar xf \(shellQuote(ours)) -C \(shellQuote("\(work)/gnu-unpacked")) && cd \(shellQuote("\(work)/gnu-unpacked")) && sha256sum --quiet -c \(shellQuote("\(work)/SHA256SUMS")) && sync *")
    }
    try? FileManager.default.removeItem(atPath: "\(work)/unpacked")
    try? FileManager.default.removeItem(atPath: "\(work)/gnu-unpacked")
    report("unpack+verify vs tar xf && sha256sum -c", ours: unpackOurs, theirs: unpackGNU, theirName: "GNU", bytes: totalBytes, goal: 0.8)
}

// 3. S3 upload of the archive to the test server, against `aws s3 cp` to the same server.
if !options.runs("s3") {
} else if let endpoint = options.s3Endpoint {
    let keys = (ProcessInfo.processInfo.environment["CCAT_TEST_S3_ACCESS_KEY_ID"] ?? "ccat-test",
                ProcessInfo.processInfo.environment["CCAT_TEST_S3_SECRET_ACCESS_KEY"] ?? "ccat-test-secret")
    let store = S3Store(name: "bench", endpointURL: endpoint, bucket: "ccat-bench-\(getpid())", region: "us-east-1", prefix: "",
                        pathStyle: true, credentials: S3Credentials(accessKeyID: keys.0, secretAccessKey: keys.1),
                        settings: S3Settings(partSize: options.s3PartSizeMiB << 20, parallelParts: options.s3ParallelParts))
    try store.createBucket()
    let size = summary!.size
    let sha = summary!.sha256
    var round = 0
    let uploadOurs = try best(options.rounds) {
        round += 1
        _ = try store.upload(file: ours, to: "ours-\(round).tar", sha256: sha, shouldStop: { false })
    }
    let environment = ["AWS_ACCESS_KEY_ID": keys.0, "AWS_SECRET_ACCESS_KEY": keys.1, "AWS_DEFAULT_REGION": "us-east-1"]
    let uploadAWS = try best(options.rounds) {
        round += 1
        try shell("aws --endpoint-url \(shellQuote(endpoint)) s3 cp --only-show-errors \(shellQuote(ours)) s3://\(store.bucket)/aws-\(round).tar", environment: environment)
    }
    for object in try store.list(prefix: "") { try store.delete(object.key) }
    report("S3 upload vs aws s3 cp", ours: uploadOurs, theirs: uploadAWS, theirName: "aws-cli", bytes: size, goal: 1.0)
    print("  (ours: \(store.settings.partSize >> 20) MiB parts, \(store.settings.parallelParts) in parallel, verified by HEAD; aws-cli: its defaults)")
} else {
    print("S3 upload: skipped (no S3 test server; run scripts/local-s3.sh start or pass --s3-endpoint)")
}
