import Crypto
import Foundation
import Testing
@testable import Archiving

@Suite("The archive writer thread and paced writeback")
struct HashingWriterTests {
    /// 4 MiB of random bytes; chunks are slices of it at varying offsets.
    static let pool: [UInt8] = {
        var generator = SystemRandomNumberGenerator()
        return (0..<(4 << 20) / 8).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
    }()

    func bytes(_ count: Int, seed: UInt64) -> ArraySlice<UInt8> {
        let offset = Int(seed &* 7919) % (Self.pool.count - count)
        return Self.pool[offset..<offset + count]
    }

    @Test func writesEveryByteInOrderAndHashesTheStream() throws {
        let directory = try scratch("hashing-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.bin").path
        let output = try AtomicFile(creating: path)
        // Chunks smaller than, equal to and larger than a slot, through a small slot ring, past
        // two writeback windows so the paced writeback runs.
        let writer = HashingWriter(path: output.temporaryPath, slots: 2, slotSize: 64 << 10) { try output.write($0) }
        var expected = Data()
        var hasher = SHA256()
        var total = 0
        var seed: UInt64 = 1
        while total < Int(AtomicFile.writebackWindow) * 2 + 12_345 {
            let size = [1, 65_536, 3 << 20, 70_001, 512][Int(seed % 5)]
            let chunk = bytes(size, seed: seed)
            try chunk.withUnsafeBytes { try writer.write($0) }
            hasher.update(data: chunk)
            if expected.count < 8 << 20 { expected.append(contentsOf: chunk) }
            total += size
            seed += 1
        }
        let sha256 = try writer.finish()
        try output.commit()
        #expect(sha256 == hex(hasher.finalize()))
        #expect(writer.bytes == Int64(total))
        let written = try FileChecksum.sha256(of: path)
        #expect(written.size == Int64(total))
        #expect(written.sha256 == sha256)
        let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)).read(upToCount: expected.count)
        #expect(head == expected)
    }

    struct DiskFull: Error {}

    @Test func aFailingSinkStopsTheProducerWithTheError() throws {
        let calls = Counter()
        let writer = HashingWriter(path: "/archive/out.tar", slots: 2, slotSize: 4096) { _ in
            if calls.increment() == 3 { throw ArchiveError(kind: .io, path: "/archive/out.tar", problem: "No space left on device") }
        }
        let chunk = [UInt8](repeating: 7, count: 4096)
        // The producer must see the failure (at a later write or at finish) instead of blocking on
        // a full slot ring that nobody drains any more.
        var failure: ArchiveError?
        do {
            for _ in 0..<100 { try chunk.withUnsafeBytes { try writer.write($0) } }
            _ = try writer.finish()
        } catch let error as ArchiveError {
            failure = error
        }
        #expect(failure?.problem == "No space left on device")
        #expect(calls.value == 3)
        // A foreign error is reported as an I/O error naming the output.
        let other = HashingWriter(path: "/archive/other.tar") { _ in throw DiskFull() }
        try chunk.withUnsafeBytes { try other.write($0) }
        #expect(throws: ArchiveError.self) { _ = try other.finish() }
    }

    @Test func cancelReturnsWithoutWritingWhatIsQueued() throws {
        let gate = NSCondition()
        let released = Counter()
        let written = Counter()
        let writer = HashingWriter(path: "/archive/out.tar", slots: 4, slotSize: 1024) { _ in
            gate.lock()
            while released.value == 0 { gate.wait() }
            gate.unlock()
            _ = written.increment()
        }
        let chunk = [UInt8](repeating: 1, count: 1024)
        for _ in 0..<4 { try chunk.withUnsafeBytes { try writer.write($0) } }
        // The first chunk is held in the sink; cancel must not wait for the other three. The sink
        // is let go only once cancel() has been called (and a moment more for it to take the
        // writer's lock): released earlier, on a busy machine, it would write the queue before
        // the cancel and prove nothing.
        let cancelling = Counter()
        DispatchQueue.global().async {
            while cancelling.value == 0 { usleep(1000) }
            usleep(500_000)
            gate.lock()
            _ = released.increment()
            gate.broadcast()
            gate.unlock()
        }
        _ = cancelling.increment()
        writer.cancel()
        #expect(written.value <= 1)
    }
}

/// A thread-safe counter for the sinks above.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() -> Int { lock.withLock { count += 1; return count } }
}
