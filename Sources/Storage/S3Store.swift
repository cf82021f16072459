import Archiving
import CLibCurl
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An S3 bucket (or a prefix in one), through libcurl with its built-in SigV4 signing. Every
/// request carries the SHA-256 of its body in `x-amz-content-sha256`, so the server rejects
/// damaged bodies; the whole object's SHA-256 is kept as `x-amz-meta-sha256` and checked by HEAD
/// after an upload and by hashing the stream on download. With `S3Settings.checksums` the upload
/// also uses S3's additional checksums: the server computes the SHA-256 of what it stored (of
/// each part, for multipart objects) and HEAD after the upload must return what we computed.
public struct S3Store: ObjectStore {
    public let name: String
    public let endpointURL: String
    public let bucket: String
    public let region: String
    public let prefix: String
    public let pathStyle: Bool
    public let credentials: S3Credentials
    public let settings: S3Settings

    public init(name: String, endpointURL: String, bucket: String, region: String, prefix: String, pathStyle: Bool,
                credentials: S3Credentials, settings: S3Settings = S3Settings()) {
        self.name = name
        self.endpointURL = endpointURL.hasSuffix("/") ? String(endpointURL.dropLast()) : endpointURL
        self.bucket = bucket
        self.region = region
        self.prefix = prefix
        self.pathStyle = pathStyle
        self.credentials = credentials
        self.settings = settings
    }

    public var description: String { "\(name) (s3://\(bucket)/\(prefix))" }

    static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    static let metadataHeader = "x-amz-meta-sha256"
    static let checksumHeader = "x-amz-checksum-sha256"

    /// Headers that ask S3 to check a body (or a part) against its SHA-256 and keep that checksum.
    func checksumHeaders(_ digest: some Sequence<UInt8>) -> [(String, String)] {
        settings.checksums ? [(Self.checksumHeader, Data(digest).base64EncodedString()), ("x-amz-sdk-checksum-algorithm", "SHA256")] : []
    }

    // MARK: Requests

    func fullKey(_ key: String) -> String {
        prefix.isEmpty ? key : (prefix.hasSuffix("/") ? prefix + key : prefix + "/" + key)
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is %XX;
    /// '/' stays in paths.
    static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Where a request for a key (nil: the bucket) goes: the full URL (query sorted and encoded),
    /// the `Host` header, and the path as sent, which is what SigV4 signs.
    func target(_ key: String?, query: [(String, String)] = []) -> (url: String, host: String, path: String) {
        let components = URLComponents(string: endpointURL)
        let scheme = components?.scheme ?? "https"
        var host = components?.host ?? endpointURL
        if let port = components?.port { host += ":\(port)" }
        var path = components?.percentEncodedPath ?? ""
        if path.hasSuffix("/") { path.removeLast() }
        if pathStyle { path += "/\(bucket)" } else { host = "\(bucket).\(host)" }
        path += "/" + (key.map { Self.encode(fullKey($0), keepSlash: true) } ?? "")
        var url = "\(scheme)://\(host)\(path)"
        if !query.isEmpty {
            url += "?" + query.map { (Self.encode($0.0, keepSlash: false), Self.encode($0.1, keepSlash: false)) }
                .sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        }
        return (url, host, path)
    }

    func url(_ key: String?, query: [(String, String)] = []) -> String {
        target(key, query: query).url
    }

    /// A signed request. `payloadSHA256` is the body's SHA-256 (S3 checks it against the body).
    func request(_ method: String, _ key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                 payloadSHA256: String = emptySHA256, body: UnsafeRawBufferPointer? = nil, download: DownloadSink? = nil) -> HTTPRequest {
        let target = target(key, query: query)
        var headers = [("x-amz-content-sha256", payloadSHA256)] + extra
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        let signer = SigV4Signer(accessKeyID: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey, region: region)
        headers += signer.sign(method: method, host: target.host, path: target.path, query: query, headers: headers, payloadSHA256: payloadSHA256)
        return HTTPRequest(method: method, url: target.url, headers: headers, body: body, download: download)
    }

    func session() throws -> CurlSession {
        try CurlSession()
    }

    /// Runs a request, retrying transient failures (network, 5xx, throttling) with a doubling delay.
    /// Any other non-2xx answer becomes a `StorageError` with S3's code and message.
    func send(_ session: CurlSession, _ request: () throws -> HTTPRequest, key: String?, what: String,
              allow: Set<Int> = [], shouldStop: @escaping ShouldStop) throws -> HTTPResponse {
        var delay = settings.retryDelaySeconds
        var attempt = 1
        while true {
            var failure: StorageError
            do {
                let response = try session.perform(request(), shouldAbort: shouldStop)
                if (200..<300).contains(response.status) || allow.contains(response.status) { return response }
                failure = responseError(response, key: key, what: what)
                let retryable = response.status >= 500 || response.status == 429
                    || S3XML.value("Code", in: String(decoding: response.body, as: UTF8.self)) == "SlowDown"
                guard retryable, attempt < settings.attempts else { throw failure }
            } catch let error as CurlFailure {
                if error.aborted { throw StopRequestedDuringCopy() }
                failure = StorageError(kind: .transport, location: description, object: key, problem: "\(what): \(error.message)")
                guard error.isTransient, attempt < settings.attempts else { throw failure }
            }
            if shouldStop() { throw StopRequestedDuringCopy() }
            Thread.sleep(forTimeInterval: delay)
            delay *= 2
            attempt += 1
        }
    }

    func responseError(_ response: HTTPResponse, key: String?, what: String) -> StorageError {
        let body = String(decoding: response.body, as: UTF8.self)
        let code = S3XML.value("Code", in: body)
        let message = S3XML.value("Message", in: body)
        let detail = [code, message].compactMap { $0 }.joined(separator: ": ")
        let kind: StorageError.Kind
        switch response.status {
        case 404: kind = .notFound
        case 500...: kind = .transport
        case 429: kind = .transport
        default: kind = code == "BadDigest" || code == "XAmzContentSHA256Mismatch" ? .checksumMismatch : .rejected
        }
        return StorageError(kind: kind, location: description, object: key,
                            problem: "\(what): HTTP \(response.status)\(detail.isEmpty ? "" : " (\(detail))")")
    }

    // MARK: ObjectStore

    public func head(_ key: String) throws -> StoredObject? {
        try headResponse(key).map { storedObject(key, from: $0) }
    }

    /// Size and recorded SHA-256 (our metadata) of the object a HEAD answered for.
    func storedObject(_ key: String, from response: HTTPResponse) -> StoredObject {
        StoredObject(key: key, size: Int64(response.headers["content-length"] ?? "") ?? 0, sha256: response.headers[Self.metadataHeader])
    }

    /// HEAD of a key (nil when absent), with the server's own checksum where it keeps one.
    func headResponse(_ key: String) throws -> HTTPResponse? {
        try validateKey(key, location: description)
        let session = try session()
        let response = try send(session, { request("HEAD", key, headers: settings.checksums ? [("x-amz-checksum-mode", "ENABLED")] : []) },
                                key: key, what: "HEAD", allow: [404], shouldStop: { false })
        return response.status == 404 ? nil : response
    }

    public func holds(_ key: String, size: Int64, sha256: String) throws -> Bool {
        guard let object = try head(key) else { return false }
        return object.size == size && object.sha256 == sha256
    }

    @discardableResult
    public func upload(file: RootedPath, to key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> StoredObject {
        try validateKey(key, location: description)
        let path = file.path
        let (fd, size) = try openSource(file, location: description, object: key)
        defer { close(fd) }
        // What the server's own SHA-256 of the object must be: that of the bytes for one PUT, that
        // of the parts' SHA-256s followed by "-<parts>" for a multipart upload (S3's composite).
        let serverChecksum: String
        if size <= Int64(settings.partSize) {
            let digest = try putSingle(fd: fd, size: Int(size), path: path, key: key, sha256: sha256, shouldStop: shouldStop)
            serverChecksum = Data(digest).base64EncodedString()
        } else {
            let upload = MultipartUpload(store: self, fd: fd, path: path, size: size, key: key, sha256: sha256, shouldStop: shouldStop)
            let partDigests = try upload.run()
            serverChecksum = Data(SHA256.hash(data: partDigests.flatMap { $0 })).base64EncodedString() + "-\(partDigests.count)"
        }
        guard let response = try headResponse(key) else {
            throw StorageError(kind: .transport, location: description, object: key, problem: "the object is missing right after its upload")
        }
        let stored = storedObject(key, from: response)
        guard stored.size == size, stored.sha256 == sha256 else {
            throw StorageError(kind: .checksumMismatch, location: description, object: key,
                               problem: "after the upload the object has \(stored.size) bytes and sha256 metadata \(stored.sha256 ?? "none"), expected \(size) and \(sha256)")
        }
        // A server without additional checksums returns none; one that has them must agree. (Some
        // servers leave out the "-<parts>" of a multipart object's checksum.)
        if settings.checksums, let reported = response.headers[Self.checksumHeader],
           reported.split(separator: "-").first != serverChecksum.split(separator: "-").first {
            throw StorageError(kind: .checksumMismatch, location: description, object: key,
                               problem: "the server's SHA-256 of the stored object is \(reported), but what was sent has \(serverChecksum)")
        }
        return stored
    }

    /// One PUT of the whole file, which must have the recorded SHA-256; returns that digest.
    func putSingle(fd: Int32, size: Int, path: String, key: String, sha256: String, shouldStop: @escaping ShouldStop) throws -> SHA256.Digest {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 4096)
        defer { buffer.deallocate() }
        let body = UnsafeRawBufferPointer(rebasing: buffer[0..<size])
        try readFully(fd, into: buffer, count: size, offset: 0, path: path, key: key)
        let digest = SHA256.hash(data: body)
        let actual = hex(digest)
        guard actual == sha256 else {
            throw StorageError(kind: .checksumMismatch, location: description, object: key,
                               problem: "the local file \(path) has SHA-256 \(actual), but \(sha256) was recorded; not uploaded")
        }
        let session = try session()
        _ = try send(session, {
            request("PUT", key, headers: [(Self.metadataHeader, sha256)] + checksumHeaders(digest), payloadSHA256: sha256, body: body)
        }, key: key, what: "PUT", shouldStop: shouldStop)
        return digest
    }

    func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, count: Int, offset: Int64, path: String, key: String) throws {
        var done = 0
        while done < count {
            let got = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                throw StorageError(kind: .io, location: description, object: key,
                                   problem: got == 0 ? "\(path) is shorter than expected" : "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            done += got
        }
    }

    @discardableResult
    public func download(_ key: String, to path: String, expectedSize: Int64?, expectedSHA256: String?,
                         shouldStop: @escaping ShouldStop) throws -> StoredObject {
        try validateKey(key, location: description)
        let session = try session()
        // Each try (send retries transient failures) starts the object over in a fresh temporary file.
        var sink: DownloadSink?
        do {
            _ = try send(session, {
                sink?.file?.discard()
                sink = DownloadSink(file: try AtomicFile(creating: path))
                return request("GET", key, download: sink)
            }, key: key, what: "GET", shouldStop: shouldStop)
            guard let sink else { throw StorageError(kind: .io, location: description, object: key, problem: "no download was started") }
            let sha = hex(sink.hasher.finalize())
            if let expectedSize, expectedSize != sink.bytes {
                throw StorageError(kind: .checksumMismatch, location: description, object: key,
                                   problem: "received \(sink.bytes) bytes, but \(expectedSize) were recorded")
            }
            if let expectedSHA256, expectedSHA256 != sha {
                throw StorageError(kind: .checksumMismatch, location: description, object: key,
                                   problem: "received data with SHA-256 \(sha), but \(expectedSHA256) was recorded")
            }
            try sink.file?.commit()
            return StoredObject(key: key, size: sink.bytes, sha256: sha)
        } catch {
            sink?.file?.discard()
            throw error
        }
    }

    public func delete(_ key: String) throws {
        try validateKey(key, location: description)
        let session = try session()
        _ = try send(session, { request("DELETE", key) },
                     key: key, what: "DELETE", allow: [404], shouldStop: { false })
    }

    public func list(prefix listPrefix: String) throws -> [StoredObject] {
        try list(prefix: listPrefix, pageSize: 1000)
    }

    /// Listing in pages of `pageSize` keys (S3's maximum is 1000), following continuation tokens.
    public func list(prefix listPrefix: String, pageSize: Int) throws -> [StoredObject] {
        var objects: [StoredObject] = []
        try listPages(prefix: listPrefix, pageSize: pageSize) { objects += $0 }
        return objects.sorted { $0.key < $1.key }
    }

    public func probe() -> LocationProbe {
        do {
            let session = try session()
            _ = try send(session, { request("HEAD", nil) },
                         key: nil, what: "HEAD bucket", shouldStop: { false })
            return LocationProbe(reachable: true)
        } catch {
            return LocationProbe(reachable: false, errorMessage: "\(error)")
        }
    }

    /// Creates the bucket (for set-up and tests; an existing bucket of ours is fine).
    public func createBucket() throws {
        let session = try session()
        let response = try send(session, { request("PUT", nil) },
                                key: nil, what: "create bucket", allow: [409], shouldStop: { false })
        if response.status == 409, S3XML.value("Code", in: String(decoding: response.body, as: UTF8.self)) != "BucketAlreadyOwnedByYou" {
            throw responseError(response, key: nil, what: "create bucket")
        }
    }

    /// Multipart uploads of `key` that were started and never completed (a killed runner), which
    /// the store keeps, and bills, until they are aborted.
    public func incompleteUploads(of key: String) throws -> [String] {
        let session = try session()
        let response = try send(session, {
            request("GET", nil, query: [("uploads", ""), ("prefix", fullKey(key))])
        }, key: key, what: "list multipart uploads", shouldStop: { false })
        let body = String(decoding: response.body, as: UTF8.self)
        return S3XML.records("Upload", in: body).compactMap { record in
            S3XML.value("Key", in: record) == fullKey(key) ? S3XML.value("UploadId", in: record) : nil
        }
    }

    func abortUpload(_ uploadID: String, key: String, session: CurlSession) throws {
        _ = try send(session, {
            request("DELETE", key, query: [("uploadId", uploadID)])
        }, key: key, what: "abort multipart upload", allow: [404], shouldStop: { false })
    }
}
