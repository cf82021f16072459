import CCatConfig
import CLibCurl
import Foundation
import OpsDB

/// A delivery that did not happen; the message is tried again.
public struct AlertDeliveryError: Error, Sendable, CustomStringConvertible {
    public var channel: String
    public var reason: String
    public var description: String { "\(channel): \(reason)" }
}

/// Sends one text to one channel through libcurl, on a thread of its own: a receiver that hangs
/// holds no thread of Swift's cooperative pool.
enum AlertTransport {
    static let timeoutSeconds = 15

    static func postJSON(_ body: Data, to url: String) async throws(AlertDeliveryError) {
        try await perform(channel: "webhook", checksHTTPStatus: true) { handle, headers in
            ccat_curl_easy_setopt_string(handle, CURLOPT_URL, url)
            headers = curl_slist_append(headers, "Content-Type: application/json")
            ccat_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
            ccat_curl_easy_setopt_long(handle, CURLOPT_POST, 1)
            ccat_curl_easy_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            return body
        }
    }

    static func mail(_ message: Data, url: String, from: String, to recipients: [String]) async throws(AlertDeliveryError) {
        // libcurl fails the transfer itself when the server refuses the mail.
        try await perform(channel: "email", checksHTTPStatus: false) { handle, headers in
            ccat_curl_easy_setopt_string(handle, CURLOPT_URL, url)
            ccat_curl_easy_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(from)>")
            for recipient in recipients { headers = curl_slist_append(headers, "<\(recipient)>") }
            ccat_curl_easy_setopt_slist(handle, CURLOPT_MAIL_RCPT, headers)
            ccat_curl_easy_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_TRY.rawValue))
            ccat_curl_easy_setopt_long(handle, CURLOPT_NETRC, Int(CURL_NETRC_OPTIONAL.rawValue))
            ccat_curl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1)
            ccat_curl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(message.count))
            return message
        }
    }

    /// Runs one transfer: `configure` sets the handle up and returns the bytes to send (a POST
    /// body, or a mail), which the read callback hands to libcurl.
    private static func perform(channel: String, checksHTTPStatus: Bool,
                                _ configure: @escaping @Sendable (UnsafeMutableRawPointer, inout UnsafeMutablePointer<curl_slist>?) -> Data) async throws(AlertDeliveryError) {
        let outcome: Result<Void, AlertDeliveryError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: run(channel: channel, checksHTTPStatus: checksHTTPStatus, configure))
            }
            thread.name = "ccat-alert-\(channel)"
            thread.start()
        }
        try outcome.get()
    }

    private final class Upload {
        let bytes: Data
        var offset = 0
        init(_ bytes: Data) { self.bytes = bytes }
    }

    private static func run(channel: String, checksHTTPStatus: Bool, _ configure: (UnsafeMutableRawPointer, inout UnsafeMutablePointer<curl_slist>?) -> Data) -> Result<Void, AlertDeliveryError> {
        _ = curlReady
        guard let handle = curl_easy_init() else { return .failure(AlertDeliveryError(channel: channel, reason: "curl_easy_init failed")) }
        defer { curl_easy_cleanup(handle) }
        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        ccat_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT, timeoutSeconds)
        ccat_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, 10)
        ccat_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        let payload = configure(handle, &list)
        let upload = Upload(payload)
        let unmanaged = Unmanaged.passRetained(upload)
        defer { unmanaged.release() }
        ccat_curl_easy_setopt_pointer(handle, CURLOPT_READDATA, unmanaged.toOpaque())
        ccat_curl_easy_setopt_data_callback(handle, CURLOPT_READFUNCTION) { buffer, size, count, context in
            guard let buffer, let context else { return 0 }
            let upload = Unmanaged<Upload>.fromOpaque(context).takeUnretainedValue()
            let n = min(size * count, upload.bytes.count - upload.offset)
            upload.bytes.withUnsafeBytes { raw in
                if n > 0 { memcpy(buffer, raw.baseAddress! + upload.offset, n) }
            }
            upload.offset += n
            return n
        }
        // The answer's body is not needed; an error status is enough.
        ccat_curl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { _, size, count, _ in size * count }
        let code = curl_easy_perform(handle)
        guard code == CURLE_OK else {
            return .failure(AlertDeliveryError(channel: channel, reason: String(cString: curl_easy_strerror(code))))
        }
        var status = 0
        ccat_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        if checksHTTPStatus, !(200..<300).contains(status) {
            return .failure(AlertDeliveryError(channel: channel, reason: "the receiver answered HTTP \(status)"))
        }
        return .success(())
    }

    private static let curlReady: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// How a message reads, in a webhook's JSON and in an e-mail.
enum AlertText {
    static func line(_ message: AlertMessage) -> String {
        switch message.event {
        case .raised: return "ALERT \(message.alert.summary)" + (message.alert.fix.map { "\n  fix: \($0)" } ?? "")
        case .cleared: return "CLEARED \(message.alert.summary)"
        }
    }

    static func subject(_ messages: [AlertMessage], site: String) -> String {
        guard messages.count == 1, let only = messages.first else {
            let raised = messages.filter { $0.event == .raised }.count
            return "[ccat \(site)] \(raised) alert\(raised == 1 ? "" : "s") raised, \(messages.count - raised) cleared"
        }
        return "[ccat \(site)] \(only.event == .raised ? "ALERT" : "CLEARED"): \(String(only.alert.summary.prefix(120)))"
    }

    static func body(_ messages: [AlertMessage], site: String) -> String {
        var text = messages.count > 1 ? "\(messages.count) changes at \(site):\n\n" : ""
        text += messages.map(line).joined(separator: "\n\n")
        return text + "\n\n(ccat status and the daemon's status page show the rest.)\n"
    }

    /// Slack- and Mattermost-compatible: `text` is what they show; `ccat` carries the details.
    struct Webhook: Encodable {
        struct Item: Encodable {
            var event: String
            var key: String
            var kind: String
            var summary: String
            var fix: String?
            var raisedAt: Date
            var clearedAt: Date?
        }
        var text: String
        var username = "ccat"
        var ccat: [Item]
    }

    static func webhook(_ messages: [AlertMessage], site: String) throws -> Data {
        let items = messages.map {
            Webhook.Item(event: $0.event.rawValue, key: $0.alert.conditionKey, kind: $0.alert.kind, summary: $0.alert.summary, fix: $0.alert.fix,
                         raisedAt: $0.alert.raisedAt, clearedAt: $0.alert.clearedAt)
        }
        let text = messages.count == 1 ? line(messages[0]) : subject(messages, site: site) + "\n" + messages.map(line).joined(separator: "\n")
        return try JSONDocument.encoder(pretty: false).encode(Webhook(text: text, ccat: items))
    }

    static func mail(_ messages: [AlertMessage], from: String, to: [String], site: String, date: Date) -> Data {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let subject = subject(messages, site: site).replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        var text = "Date: \(formatter.string(from: date))\r\nFrom: \(from)\r\nTo: \(to.joined(separator: ", "))\r\n"
        text += "Subject: \(subject)\r\nMessage-ID: <ccat-\(messages.map { String($0.id) }.joined(separator: "-"))@\(site)>\r\n"
        text += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        // libcurl doubles a dot that starts a line (SMTP's end of data).
        text += body(messages, site: site).split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
        return Data(text.utf8)
    }
}
