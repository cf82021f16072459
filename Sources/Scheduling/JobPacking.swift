/// How many pending operations go into one batch job: bounded by count, by bytes and by the time
/// the job may run. The first operation always fits (a single operation larger than the limits
/// still has to run somewhere; its own size is the admin's signal to raise them).
public struct JobPacking: Sendable, Equatable {
    public var maxOperations: Int
    public var maxBytes: Int64
    /// The job's time limit; nil means no walltime bound.
    public var walltimeSeconds: Int?
    /// Expected fixed cost of one operation (claiming, checksums of small files, reporting).
    public var secondsPerOperation: Double
    /// Expected throughput, for the size-dependent part of an operation's duration.
    public var bytesPerSecond: Double
    /// Share of the walltime the packed work may fill, leaving room for slow storage.
    public var walltimeFill: Double

    public init(maxOperations: Int, maxBytes: Int64, walltimeSeconds: Int?, secondsPerOperation: Double = 2,
                bytesPerSecond: Double = 100_000_000, walltimeFill: Double = 0.5) {
        self.maxOperations = max(1, maxOperations)
        self.maxBytes = max(1, maxBytes)
        self.walltimeSeconds = walltimeSeconds
        self.secondsPerOperation = secondsPerOperation
        self.bytesPerSecond = bytesPerSecond
        self.walltimeFill = walltimeFill
    }

    /// The number of leading operations (by size, in dispatch order) that go into the next job.
    public func count(sizes: [Int64]) -> Int {
        var bytes: Int64 = 0
        var seconds = 0.0
        var taken = 0
        let budget = walltimeSeconds.map { Double($0) * walltimeFill }
        for size in sizes.prefix(maxOperations) {
            let nextBytes = bytes &+ size
            let nextSeconds = seconds + secondsPerOperation + Double(size) / bytesPerSecond
            if taken > 0 {
                if nextBytes > maxBytes { break }
                if let budget, nextSeconds > budget { break }
            }
            bytes = nextBytes
            seconds = nextSeconds
            taken += 1
        }
        return taken
    }
}
