import ArgumentParser
import CGlibcExtras
import Glibc

/// A wide-area link between two test hosts, emulated in user space because the kernels these tests
/// run on may lack netem (`CONFIG_NET_SCH_NETEM`). It creates a TUN device in each host's network
/// namespace and carries every IP packet between them with a one-way delay, a rate (a FIFO
/// bottleneck with a tail-drop queue) and random loss, each direction on its own. TCP over it sees
/// the round trip, the bottleneck and the losses, as over a real long link.
///
/// SIGUSR1 cuts the link (everything in flight and everything after is dropped, as on a dead
/// path), SIGUSR2 restores it, SIGTERM or SIGINT end it (the devices go with the process).
@main
struct WANEmulator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ccat-wan-emulator",
        abstract: "Emulate a long, lossy link between two network namespaces (a TUN device in each).",
        discussion: """
            Started by 'scripts/local-sites.sh wan on', which routes the telescope and Cologne hosts \
            to each other through the two devices. Signals: USR1 cuts the link, USR2 restores it, \
            TERM ends it.
            """)

    @Option(help: ArgumentHelp("One end: a network namespace (under /run/netns) and the TUN device to create in it.", valueName: "netns:device"))
    var a: String
    @Option(help: ArgumentHelp("The other end.", valueName: "netns:device"))
    var b: String
    @Option(help: ArgumentHelp("One-way delay: 100ms, 1s, 500us.", valueName: "duration"))
    var delay: String = "100ms"
    @Option(help: ArgumentHelp("The bottleneck's rate in each direction: 500mbit, 1gbit, 64kbit.", valueName: "rate"))
    var rate: String = "500mbit"
    @Option(help: ArgumentHelp("Packets lost at random, in percent, in each direction.", valueName: "percent"))
    var loss: Double = 0.01
    @Option(help: ArgumentHelp("The bottleneck's queue, as time at the rate; a packet that would wait longer is dropped (default: one round trip, 2 x delay, and at least 50ms).", valueName: "duration"))
    var queue: String?
    @Option(help: ArgumentHelp("Write this process's id to this file once both devices exist.", valueName: "path"))
    var pidFile: String?

    func validate() throws {
        _ = try Self.nanoseconds(delay)
        _ = try Self.bitsPerSecond(rate)
        if let queue { _ = try Self.nanoseconds(queue) }
        guard (0...100).contains(loss) else { throw ValidationError("--loss is a percentage between 0 and 100, not \(loss)") }
        for end in [a, b] where Self.end(end) == nil {
            throw ValidationError("'\(end)' is not netns:device (a namespace name under /run/netns and a device name of 1-15 characters)")
        }
    }

    func run() throws {
        let delayNs = try Self.nanoseconds(delay)
        let link = Link(rate: try Self.bitsPerSecond(rate), delay: delayNs, lossPerMillion: UInt64(loss * 10_000),
                        queue: try queue.map(Self.nanoseconds) ?? max(2 * delayNs, 50_000_000))
        let first = try Self.open(Self.end(a)!)
        let second = try Self.open(Self.end(b)!)
        installSignalHandlers()
        if let pidFile {
            let text = "\(getpid())\n"
            guard let file = fopen(pidFile, "w"), fputs(text, file) >= 0, fclose(file) == 0 else {
                throw EmulatorError("cannot write \(pidFile): \(String(cString: strerror(errno)))")
            }
        }
        var forward = Direction(from: first, to: second, link: link)
        var backward = Direction(from: second, to: first, link: link)
        try pump(&forward, &backward)
        for (name, direction) in [(a, forward), (b, backward)] {
            let counts = direction.counts
            say("ccat-wan-emulator: from \(name): \(counts.packets) packets, \(counts.bytes) bytes carried; dropped \(counts.lost) at random, \(counts.overflowed) by the full queue, \(counts.cut) while cut, \(counts.unwritten) refused by the receiving device")
        }
    }

    /// The main loop: read what both devices have, deliver what is due, sleep until the next is.
    func pump(_ forward: inout Direction, _ backward: inout Direction) throws {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var random = XorShift(seed: UInt64(truncatingIfNeeded: clockNanoseconds()) | 1)
        while stopRequested == 0 {
            let cut = linkCut != 0
            var descriptors = [pollfd(fd: forward.from, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: backward.from, events: Int16(POLLIN), revents: 0)]
            let next = [forward.nextDue, backward.nextDue].compactMap { $0 }.min()
            let now = clockNanoseconds()
            let ready = ccat_poll_nanoseconds(&descriptors, 2, next.map { $0 > now ? Int64($0 - now) : 0 } ?? -1)
            if ready < 0 && errno != EINTR { throw EmulatorError("poll: \(String(cString: strerror(errno)))") }
            if cut { forward.dropAll(); backward.dropAll() }
            if ready > 0 {
                if descriptors[0].revents != 0 { try forward.receive(into: &buffer, random: &random, cut: cut) }
                if descriptors[1].revents != 0 { try backward.receive(into: &buffer, random: &random, cut: cut) }
            }
            let after = clockNanoseconds()
            forward.deliver(now: after)
            backward.deliver(now: after)
        }
    }

    static func end(_ text: String) -> (namespace: String, device: String)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[0].contains("/"), (1...15).contains(parts[1].utf8.count) else { return nil }
        return (parts[0], parts[1])
    }

    /// A TUN device named `device` inside namespace `namespace`, non-blocking.
    static func open(_ end: (namespace: String, device: String)) throws -> Int32 {
        let namespace = Glibc.open("/run/netns/\(end.namespace)", O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else { throw EmulatorError("no network namespace \(end.namespace): \(String(cString: strerror(errno))) (create the hosts first: scripts/local-sites.sh start)") }
        defer { close(namespace) }
        guard ccat_enter_network_namespace(namespace) == 0 else { throw EmulatorError("cannot enter \(end.namespace): \(String(cString: strerror(errno))) (run as root)") }
        let tun = Glibc.open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard tun >= 0 else { throw EmulatorError("cannot open /dev/net/tun: \(String(cString: strerror(errno)))") }
        guard ccat_tun_attach(tun, end.device) == 0 else {
            let reason = String(cString: strerror(errno))
            close(tun)
            throw EmulatorError("cannot create TUN device \(end.device) in \(end.namespace): \(reason)")
        }
        return tun
    }

    static func nanoseconds(_ text: String) throws -> UInt64 {
        for (suffix, scale) in [("us", 1e3), ("ms", 1e6), ("s", 1e9)] where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value >= 0 { return UInt64(value * scale) }
        }
        throw ValidationError("'\(text)' is not a duration such as 100ms, 1s or 500us")
    }

    static func bitsPerSecond(_ text: String) throws -> UInt64 {
        let lower = text.lowercased()
        for (suffix, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)] where lower.hasSuffix(suffix) {
            if let value = Double(lower.dropLast(suffix.count)), value > 0 { return UInt64(value * scale) }
        }
        throw ValidationError("'\(text)' is not a rate such as 500mbit, 1gbit or 64kbit")
    }
}

struct EmulatorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Link {
    let rate: UInt64
    let delay: UInt64
    let lossPerMillion: UInt64
    let queue: UInt64
}

/// One direction of the link: packets read from `from`, written to `to` when due.
struct Direction {
    let from: Int32
    let to: Int32
    let link: Link
    /// When the bottleneck has finished sending what it holds (monotonic nanoseconds).
    var busyUntil: UInt64 = 0
    /// Packets on their way, in order of departure (the delay is constant, so FIFO order is due order).
    var inFlight: [(due: UInt64, bytes: [UInt8])] = []
    var head = 0
    var counts = (packets: 0, bytes: 0, lost: 0, overflowed: 0, cut: 0, unwritten: 0)

    init(from: Int32, to: Int32, link: Link) {
        self.from = from
        self.to = to
        self.link = link
    }

    var nextDue: UInt64? { head < inFlight.count ? inFlight[head].due : nil }

    mutating func receive(into buffer: inout [UInt8], random: inout XorShift, cut: Bool) throws {
        // At most a few hundred packets per wake-up, so the other direction is not starved.
        for _ in 0..<256 {
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                throw EmulatorError("read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { return }
            if cut { counts.cut += 1; continue }
            if link.lossPerMillion > 0 && random.next() % 1_000_000 < link.lossPerMillion { counts.lost += 1; continue }
            let now = clockNanoseconds()
            let start = max(now, busyUntil)
            if start - now > link.queue { counts.overflowed += 1; continue }
            busyUntil = start + UInt64(count) * 8 * 1_000_000_000 / link.rate
            inFlight.append((busyUntil + link.delay, Array(buffer[0..<count])))
        }
    }

    mutating func deliver(now: UInt64) {
        while head < inFlight.count && inFlight[head].due <= now {
            let written = inFlight[head].bytes.withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
            if written > 0 { counts.packets += 1; counts.bytes += written } else { counts.unwritten += 1 }
            head += 1
        }
        if head > 4096 && head * 2 > inFlight.count {
            inFlight.removeFirst(head)
            head = 0
        }
    }

    mutating func dropAll() {
        counts.cut += inFlight.count - head
        inFlight.removeAll(keepingCapacity: true)
        head = 0
        busyUntil = 0
    }
}

/// A fast generator for the loss decisions (one per packet).
struct XorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

/// A line on standard error.
func say(_ line: String) {
    let text = Array((line + "\n").utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func clockNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

nonisolated(unsafe) var stopRequested: sig_atomic_t = 0
nonisolated(unsafe) var linkCut: sig_atomic_t = 0

func installSignalHandlers() {
    func handle(_ signal: Int32, _ handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signal, &action, nil)
    }
    handle(SIGTERM) { _ in stopRequested = 1 }
    handle(SIGINT) { _ in stopRequested = 1 }
    handle(SIGUSR1) { _ in linkCut = 1 }
    handle(SIGUSR2) { _ in linkCut = 0 }
}
