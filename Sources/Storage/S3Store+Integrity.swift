import Archiving
import Crypto
import Foundation

// What fixity checks, audits and repairs ask of an S3 archive: a paged listing, a read-back that
// hashes the whole object, and a server-side move aside.
extension S3Store {
    /// ListObjectsV2, one page per request, following continuation tokens.
    public func listPages(prefix listPrefix: String, pageSize: Int, _ page: ([StoredObject]) throws -> Void) throws {
        let session = try session()
        let base = fullKey(listPrefix)
        let strip = prefix.isEmpty ? 0 : fullKey("").count
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", base), ("max-keys", "\(min(pageSize, 1000))")]
            if let token { query.append(("continuation-token", token)) }
            let response = try send(session, { request("GET", nil, query: query) },
                                    key: listPrefix, what: "list objects", shouldStop: { false })
            let body = String(decoding: response.body, as: UTF8.self)
            var objects: [StoredObject] = []
            for record in S3XML.records("Contents", in: body) {
                guard let key = S3XML.value("Key", in: record) else { continue }
                objects.append(StoredObject(key: String(key.dropFirst(strip)), size: Int64(S3XML.value("Size", in: record) ?? "") ?? 0, sha256: nil,
                                            modified: S3XML.value("LastModified", in: record).flatMap(S3XML.date)))
            }
            try page(objects)
            token = S3XML.value("IsTruncated", in: body) == "true" ? S3XML.value("NextContinuationToken", in: body) : nil
        } while token != nil
    }

    /// ListMultipartUploads under the prefix, page by page (key and upload-id markers).
    public func incompleteWrites(startedBefore cutoff: Date) throws -> [StoredObject] {
        let session = try session()
        let strip = prefix.isEmpty ? 0 : fullKey("").count
        var found: [StoredObject] = []
        var markers: (key: String, upload: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", fullKey(""))]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.upload)] }
            let response = try send(session, { request("GET", nil, query: query) }, key: nil, what: "list multipart uploads", shouldStop: { false })
            let body = String(decoding: response.body, as: UTF8.self)
            for record in S3XML.records("Upload", in: body) {
                guard let key = S3XML.value("Key", in: record), let started = S3XML.value("Initiated", in: record).flatMap(S3XML.date),
                      started < cutoff else { continue }
                found.append(StoredObject(key: String(key.dropFirst(strip)), size: 0, sha256: nil, modified: started))
            }
            markers = nil
            if S3XML.value("IsTruncated", in: body) == "true", let key = S3XML.value("NextKeyMarker", in: body),
               let upload = S3XML.value("NextUploadIdMarker", in: body) {
                markers = (key, upload)
            }
        } while markers != nil
        return found
    }

    /// A GET of the whole object, hashed as it arrives and written nowhere.
    public func readBack(_ key: String, shouldStop: @escaping ShouldStop) throws -> StoredObject? {
        try validateKey(key, location: description)
        let session = try session()
        var sink: DownloadSink?
        let response = try send(session, {
            sink = DownloadSink(file: nil)
            return request("GET", key, download: sink)
        }, key: key, what: "GET", allow: [404], shouldStop: shouldStop)
        guard response.status != 404, let sink else { return nil }
        return StoredObject(key: key, size: sink.bytes, sha256: hex(sink.hasher.finalize()))
    }

    /// A server-side copy, then DELETE of the original: CopyObject (metadata kept) up to S3's 5 GiB
    /// limit for one copy, a multipart copy (UploadPartCopy) above it.
    public func move(_ key: String, to newKey: String) throws {
        try move(key, to: newKey, singleCopyLimit: 5 << 30, partSize: 1 << 30)
    }

    func move(_ key: String, to newKey: String, singleCopyLimit: Int64, partSize: Int64) throws {
        try validateKey(newKey, location: description)
        guard let object = try head(key) else {
            throw StorageError(kind: .notFound, location: description, object: key, problem: "there is no object to move to \(newKey)")
        }
        let session = try session()
        let source = "/\(bucket)/" + Self.encode(fullKey(key), keepSlash: true)
        if object.size <= singleCopyLimit {
            let response = try send(session, { request("PUT", newKey, headers: [("x-amz-copy-source", source)]) },
                                    key: newKey, what: "copy from \(key)", shouldStop: { false })
            // CopyObject may answer 200 with an error in its body.
            if String(decoding: response.body, as: UTF8.self).contains("<Error>") {
                throw responseError(HTTPResponse(status: 500, headers: [:], body: response.body), key: newKey, what: "copy from \(key)")
            }
        } else {
            try copyInParts(from: source, size: object.size, sha256: object.sha256, to: newKey, partSize: partSize, session: session)
        }
        _ = try send(session, { request("DELETE", key) }, key: key, what: "DELETE", allow: [404], shouldStop: { false })
    }

    /// CreateMultipartUpload, one UploadPartCopy per byte range, CompleteMultipartUpload; aborted
    /// on any failure.
    func copyInParts(from source: String, size: Int64, sha256: String?, to key: String, partSize: Int64, session: CurlSession) throws {
        let created = try send(session, {
            request("POST", key, query: [("uploads", "")], headers: sha256.map { [(Self.metadataHeader, $0)] } ?? [])
        }, key: key, what: "start multipart copy", shouldStop: { false })
        guard let uploadID = S3XML.value("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
            throw StorageError(kind: .rejected, location: description, object: key, problem: "the server started a multipart copy without an UploadId")
        }
        do {
            var xml = "<CompleteMultipartUpload>"
            var number = 1
            for first in stride(from: Int64(0), to: size, by: Int(partSize)) {
                let last = min(size, first + partSize) - 1
                let response = try send(session, {
                    request("PUT", key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)],
                            headers: [("x-amz-copy-source", source), ("x-amz-copy-source-range", "bytes=\(first)-\(last)")])
                }, key: key, what: "copy part \(number)", shouldStop: { false })
                guard let etag = S3XML.value("ETag", in: String(decoding: response.body, as: UTF8.self)) else {
                    throw StorageError(kind: .rejected, location: description, object: key, problem: "part \(number) was copied without an ETag")
                }
                xml += "<Part><PartNumber>\(number)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
                number += 1
            }
            xml += "</CompleteMultipartUpload>"
            let body = Array(xml.utf8)
            let digest = hex(SHA256.hash(data: body))
            let response = try body.withUnsafeBytes { bytes in
                try send(session, {
                    request("POST", key, query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")], payloadSHA256: digest, body: bytes)
                }, key: key, what: "complete multipart copy", shouldStop: { false })
            }
            if String(decoding: response.body, as: UTF8.self).contains("<Error>") {
                throw responseError(HTTPResponse(status: 500, headers: [:], body: response.body), key: key, what: "complete multipart copy")
            }
        } catch {
            try? abortUpload(uploadID, key: key, session: session)
            throw error
        }
    }
}
