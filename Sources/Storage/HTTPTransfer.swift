import Archiving
import CLibCurl
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP request through a libcurl easy handle (already signed; see `SigV4Signer`).
struct HTTPRequest {
    var method: String
    var url: String
    var headers: [(String, String)] = []
    /// The request body (PUT/POST), sent from memory.
    var body: UnsafeRawBufferPointer?
    /// Where a successful response body goes; nil collects it in memory.
    var download: DownloadSink?
}

struct HTTPResponse {
    var status: Int
    var headers: [String: String]
    var body: Data
}

/// A response body streamed into a file under its temporary name while it is hashed (or only
/// hashed, without a file: a read-back).
final class DownloadSink {
    let file: AtomicFile?
    var hasher = SHA256()
    var bytes: Int64 = 0
    var writeError: ArchiveError?

    init(file: AtomicFile?) { self.file = file }
}

/// A failure of the transport itself (connection refused, timeout, reset), not an HTTP status.
struct CurlFailure: Error {
    var code: CURLcode
    var message: String
    var aborted: Bool

    /// Failures worth retrying: the network, not the request.
    var isTransient: Bool {
        !aborted && [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                     CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST, CURLE_SSL_CONNECT_ERROR,
                     CURLE_HTTP2, CURLE_HTTP2_STREAM].contains(code)
    }
}

private let verbose = ProcessInfo.processInfo.environment["CCAT_CURL_VERBOSE"] == "1"

private let curlInitialized: Bool = {
    curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}()

/// State shared with libcurl's callbacks for one request.
private final class TransferState {
    var body: UnsafeRawBufferPointer?
    var sent = 0
    var status = 0
    var headers: [String: String] = [:]
    var received = Data()
    var download: DownloadSink?
    var shouldAbort: () -> Bool = { false }
    var aborted = false
}

/// Runs requests on one reusable easy handle (connections are kept alive between requests).
/// Not thread-safe: one per thread.
final class CurlSession {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    let connectTimeoutSeconds: Int
    let stallSeconds: Int

    init(connectTimeoutSeconds: Int = 30, stallSeconds: Int = 120) throws {
        guard curlInitialized, let handle = curl_easy_init() else {
            throw StorageError(kind: .transport, location: "", problem: "libcurl could not be initialized")
        }
        self.handle = handle
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.stallSeconds = stallSeconds
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Performs the request. `shouldAbort` is polled during the transfer (a stop request).
    func perform(_ request: HTTPRequest, shouldAbort: @escaping () -> Bool = { false }) throws -> HTTPResponse {
        curl_easy_reset(handle)
        let state = TransferState()
        state.body = request.body
        state.download = request.download
        state.shouldAbort = shouldAbort
        let context = Unmanaged.passUnretained(state).toOpaque()
        errorBuffer[0] = 0

        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        // No "Expect: 100-continue" round trip: S3 answers quickly either way.
        for line in request.headers.map({ "\($0.0): \($0.1)" }) + ["Expect:"] {
            list = curl_slist_append(list, line)
        }

        ccat_curl_easy_setopt_string(handle, CURLOPT_URL, request.url)
        ccat_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        ccat_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
        ccat_curl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        ccat_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeoutSeconds)
        // A transfer slower than 1 KiB/s for this long is treated as stalled and retried.
        ccat_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1024)
        ccat_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, stallSeconds)
        ccat_curl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        ccat_curl_easy_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        // CCAT_CURL_VERBOSE=1 traces requests on standard error (signatures included, secrets not).
        if verbose { ccat_curl_easy_setopt_long(handle, CURLOPT_VERBOSE, 1) }
        ccat_curl_easy_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)
        ccat_curl_easy_setopt_xferinfo_callback(handle) { userdata, _, _, _, _ in
            let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
            if state.shouldAbort() {
                state.aborted = true
                return 1
            }
            return 0
        }

        switch request.method {
        case "HEAD":
            ccat_curl_easy_setopt_long(handle, CURLOPT_NOBODY, 1)
        case "GET":
            ccat_curl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1)
        default:
            if let body = request.body {
                ccat_curl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1)
                ccat_curl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(body.count))
                ccat_curl_easy_setopt_pointer(handle, CURLOPT_READDATA, context)
                ccat_curl_easy_setopt_data_callback(handle, CURLOPT_READFUNCTION) { buffer, size, count, userdata in
                    let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
                    guard let body = state.body, let buffer else { return 0 }
                    let chunk = min(size * count, body.count - state.sent)
                    if chunk > 0 {
                        UnsafeMutableRawPointer(buffer).copyMemory(from: body.baseAddress! + state.sent, byteCount: chunk)
                        state.sent += chunk
                    }
                    return chunk
                }
            }
            if request.method != "PUT" || request.body == nil {
                ccat_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
        }

        ccat_curl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        ccat_curl_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION) { buffer, size, count, userdata in
            let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
            let length = size * count
            guard let buffer else { return length }
            let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: length), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("HTTP/") {
                // A new response (after a redirect or 100 Continue): start over.
                state.headers = [:]
                state.status = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                state.headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return length
        }
        ccat_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        ccat_curl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { buffer, size, count, userdata in
            let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
            let length = size * count
            guard let buffer else { return length }
            let chunk = UnsafeRawBufferPointer(start: buffer, count: length)
            if let sink = state.download, (200..<300).contains(state.status) {
                do {
                    try sink.file?.write(chunk)
                } catch let error as ArchiveError {
                    sink.writeError = error
                    return 0
                } catch {
                    return 0
                }
                sink.hasher.update(bufferPointer: chunk)
                sink.bytes += Int64(length)
            } else if state.received.count < 1 << 20 {
                state.received.append(contentsOf: chunk)
            }
            return length
        }

        let code = curl_easy_perform(handle)
        if let error = state.download?.writeError { throw error }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            throw CurlFailure(code: code, message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail,
                              aborted: state.aborted)
        }
        var status = 0
        ccat_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: state.headers, body: state.received)
    }
}
