import Crypto
import Foundation

/// Hashes a stream and hands it to `sink` (writing an `AtomicFile`) on a thread of its own, so the producer
/// (reading the inputs, hashing each member, libarchive's framing) and the consumer (hashing the
/// archive, copying it into the page cache) run on two cores at once. The producer hands over
/// copies in a few cache-sized slots; it waits only when every slot is full.
///
/// The first write error stops the thread; the producer sees it at its next `write` or at
/// `finish`. `cancel` stops the thread without writing what is queued.
final class HashingWriter: @unchecked Sendable {
    private let path: String
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private let slotSize: Int
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var free: [UnsafeMutableRawBufferPointer]
    private var queued: [(slot: UnsafeMutableRawBufferPointer, count: Int)] = []
    private var closing = false
    private var cancelled = false
    private var running = true
    private var failure: ArchiveError?
    // Touched only by the writer thread until `running` is false.
    private var hasher = SHA256()
    private var slots: [UnsafeMutableRawBufferPointer]

    /// Bytes accepted so far (producer side).
    private(set) var bytes: Int64 = 0

    /// `path` names the output in errors `sink` throws that are not `ArchiveError`s.
    init(path: String, slots count: Int = 4, slotSize: Int = ioBufferSize,
         sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.path = path
        self.sink = sink
        self.slotSize = slotSize
        slots = (0..<count).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: slotSize, alignment: 4096) }
        free = slots
        let thread = Thread { [self] in drain() }
        thread.name = "ccat-archive-writer"
        thread.start()
    }

    deinit {
        for slot in slots { slot.deallocate() }
    }

    /// Copies `bytes` into free slots and queues them; throws the writer's error if it has failed.
    func write(_ data: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < data.count {
            condition.lock()
            while free.isEmpty && failure == nil { condition.wait() }
            if let failure {
                condition.unlock()
                throw failure
            }
            let slot = free.removeLast()
            condition.unlock()
            let count = min(slotSize, data.count - offset)
            slot.baseAddress!.copyMemory(from: data.baseAddress! + offset, byteCount: count)
            condition.lock()
            queued.append((slot, count))
            condition.broadcast()
            condition.unlock()
            offset += count
            bytes += Int64(count)
        }
    }

    /// Waits until everything queued is written and returns the SHA-256 of the whole stream.
    func finish() throws -> String {
        condition.lock()
        closing = true
        condition.broadcast()
        while running { condition.wait() }
        let failure = failure
        condition.unlock()
        if let failure { throw failure }
        return hex(hasher.finalize())
    }

    /// Stops the writer without writing what is still queued, and waits for it.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    private func drain() {
        while true {
            condition.lock()
            while queued.isEmpty && !closing && !cancelled { condition.wait() }
            if cancelled || queued.isEmpty {
                running = false
                condition.broadcast()
                condition.unlock()
                return
            }
            let (slot, count) = queued.removeFirst()
            condition.unlock()

            let chunk = UnsafeRawBufferPointer(rebasing: slot[0..<count])
            hasher.update(bufferPointer: chunk)
            var writeError: ArchiveError?
            do {
                try sink(chunk)
            } catch let failed as ArchiveError {
                writeError = failed
            } catch {
                writeError = ArchiveError(kind: .io, path: path, problem: "\(error)")
            }

            condition.lock()
            free.append(slot)
            if let writeError {
                failure = writeError
                running = false
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.broadcast()
            condition.unlock()
        }
    }
}
