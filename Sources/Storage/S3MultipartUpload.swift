import Archiving
import CLibCurl
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One multipart upload: stale uploads of the key are aborted first, parts are read with `pread`
/// and sent by several threads, each part retried on its own; the whole file is hashed in order
/// meanwhile and must match before the upload is completed. Any failure aborts the upload.
final class MultipartUpload: @unchecked Sendable {
    let store: S3Store
    let fd: Int32
    let path: String
    let size: Int64
    let key: String
    let sha256: String
    let shouldStop: ShouldStop
    let partCount: Int
    private let lock = NSLock()
    private var nextPart = 0
    /// Each uploaded part's ETag and SHA-256, by part number.
    private var parts: [Int: (etag: String, digest: SHA256.Digest)] = [:]
    private var firstError: (any Error)?

    init(store: S3Store, fd: Int32, path: String, size: Int64, key: String, sha256: String, shouldStop: @escaping ShouldStop) {
        self.store = store
        self.fd = fd
        self.path = path
        self.size = size
        self.key = key
        self.sha256 = sha256
        self.shouldStop = shouldStop
        partCount = Int((size + Int64(store.settings.partSize) - 1) / Int64(store.settings.partSize))
    }

    /// Uploads the parts and completes the object; returns each part's SHA-256, in order.
    func run() throws -> [[UInt8]] {
        let session = try store.session()
        for stale in try store.incompleteUploads(of: key) {
            try store.abortUpload(stale, key: key, session: session)
        }
        let checksumAlgorithm = store.settings.checksums ? [("x-amz-checksum-algorithm", "SHA256")] : []
        let created = try store.send(session, {
            store.request("POST", key, query: [("uploads", "")], headers: [(S3Store.metadataHeader, sha256)] + checksumAlgorithm)
        }, key: key, what: "start multipart upload", shouldStop: shouldStop)
        guard let uploadID = S3XML.value("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
            throw StorageError(kind: .rejected, location: store.description, object: key, problem: "the server started a multipart upload without an UploadId")
        }
        do {
            try sendParts(uploadID: uploadID)
            try complete(uploadID: uploadID, session: session)
        } catch {
            try? store.abortUpload(uploadID, key: key, session: session)
            throw error
        }
        return lock.withLock { (1...partCount).map { Array(parts[$0]!.digest) } }
    }

    private func fail(_ error: any Error) {
        lock.withLock { if firstError == nil { firstError = error } }
    }

    private var failed: Bool { lock.withLock { firstError != nil } }

    private func sendParts(uploadID: String) throws {
        let group = DispatchGroup()
        let workers = min(store.settings.parallelParts, partCount)
        for _ in 0..<workers {
            group.enter()
            let thread = Thread { [self] in
                defer { group.leave() }
                do { try partWorker(uploadID: uploadID) } catch { fail(error) }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        // The whole file, in order, while the parts go out: its SHA-256 must be the recorded one.
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        var hashError: (any Error)?
        while offset < size, !failed {
            let count = Int(min(Int64(buffer.count), size - offset))
            do {
                try store.readFully(fd, into: buffer, count: count, offset: offset, path: path, key: key)
            } catch {
                hashError = error
                break
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            offset += Int64(count)
        }
        group.wait()
        if let hashError { throw hashError }
        if let error = lock.withLock({ firstError }) { throw error }
        let actual = hex(hasher.finalize())
        guard actual == sha256 else {
            throw StorageError(kind: .checksumMismatch, location: store.description, object: key,
                               problem: "the local file \(path) has SHA-256 \(actual), but \(sha256) was recorded; upload aborted")
        }
    }

    private func partWorker(uploadID: String) throws {
        let session = try store.session()
        let partSize = store.settings.partSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: partSize, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            if failed { return }
            if shouldStop() { throw StopRequestedDuringCopy() }
            let index: Int? = lock.withLock {
                guard nextPart < partCount else { return nil }
                defer { nextPart += 1 }
                return nextPart
            }
            guard let index else { return }
            let offset = Int64(index) * Int64(partSize)
            let count = Int(min(Int64(partSize), size - offset))
            try store.readFully(fd, into: buffer, count: count, offset: offset, path: path, key: key)
            let body = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            let digest = SHA256.hash(data: body)
            let number = index + 1
            let response = try store.send(session, {
                store.request("PUT", key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)],
                              headers: store.checksumHeaders(digest), payloadSHA256: hex(digest), body: body)
            }, key: key, what: "upload part \(number) of \(partCount)", shouldStop: shouldStop)
            guard let etag = response.headers["etag"] else {
                throw StorageError(kind: .rejected, location: store.description, object: key, problem: "part \(number) was accepted without an ETag")
            }
            lock.withLock { parts[number] = (etag, digest) }
        }
    }

    private func complete(uploadID: String, session: CurlSession) throws {
        let parts = lock.withLock { self.parts }
        guard parts.count == partCount else {
            throw StorageError(kind: .transport, location: store.description, object: key, problem: "only \(parts.count) of \(partCount) parts were uploaded")
        }
        var xml = "<CompleteMultipartUpload>"
        for number in 1...partCount {
            // With additional checksums S3 wants each part's checksum again here.
            let part = parts[number]!
            let checksum = store.settings.checksums ? "<ChecksumSHA256>\(Data(part.digest).base64EncodedString())</ChecksumSHA256>" : ""
            xml += "<Part><PartNumber>\(number)</PartNumber><ETag>\(S3XML.escape(part.etag))</ETag>\(checksum)</Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let digest = hex(SHA256.hash(data: body))
        let response = try body.withUnsafeBytes { bytes in
            try store.send(session, {
                store.request("POST", key, query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")],
                              payloadSHA256: digest, body: bytes)
            }, key: key, what: "complete multipart upload", shouldStop: shouldStop)
        }
        // S3 may answer 200 and still report an error in the body.
        let text = String(decoding: response.body, as: UTF8.self)
        if text.contains("<Error>") {
            throw store.responseError(HTTPResponse(status: 500, headers: [:], body: response.body), key: key, what: "complete multipart upload")
        }
    }
}
