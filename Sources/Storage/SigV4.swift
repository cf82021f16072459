import Archiving
import Crypto
import Foundation

/// AWS Signature Version 4 for S3 requests (header-based, with the payload's SHA-256).
///
/// libcurl has this built in (`CURLOPT_AWS_SIGV4`), but the libcurl of Debian 12 (7.88) signs
/// percent-encoded object keys and query strings differently from S3 and signs an `Expect:`
/// header it then does not send; checked against a signature-verifying S3 server, such requests
/// were refused. So signing is done here, and libcurl carries the requests.
struct SigV4Signer {
    var accessKeyID: String
    var secretAccessKey: String
    var region: String
    var service = "s3"

    /// The headers to add to a request: `x-amz-date` and `Authorization`.
    ///
    /// - `path`: the URI path exactly as sent (each segment already encoded once, as S3 wants).
    /// - `query`: unencoded name/value pairs; they are encoded and sorted here.
    /// - `headers`: every header to sign besides `host` and `x-amz-date` (names in any case).
    func sign(method: String, host: String, path: String, query: [(String, String)], headers: [(String, String)],
              payloadSHA256: String, date: Date = Date()) -> [(String, String)] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amzDate = formatter.string(from: date)
        let day = String(amzDate.prefix(8))

        var all = headers.map { ($0.0.lowercased(), $0.1.trimmingCharacters(in: .whitespaces)) }
        all.append(("host", host))
        all.append(("x-amz-date", amzDate))
        all.sort { $0.0 < $1.0 }
        let signedHeaders = all.map(\.0).joined(separator: ";")
        let canonicalHeaders = all.map { "\($0.0):\($0.1)\n" }.joined()
        let encoded: [(name: String, value: String)] = query.map { pair in
            (S3Store.encode(pair.0, keepSlash: false), S3Store.encode(pair.1, keepSlash: false))
        }
        let sortedQuery = encoded.sorted { left, right in left.name == right.name ? left.value < right.value : left.name < right.name }
        let canonicalQuery = sortedQuery.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let canonicalRequest = [method, path.isEmpty ? "/" : path, canonicalQuery, canonicalHeaders, signedHeaders, payloadSHA256]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")

        func hmac(_ key: [UInt8], _ text: String) -> [UInt8] {
            Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key)))
        }
        var key = hmac(Array("AWS4\(secretAccessKey)".utf8), day)
        key = hmac(key, region)
        key = hmac(key, service)
        key = hmac(key, "aws4_request")
        let signature = hex(hmac(key, stringToSign))
        return [
            ("x-amz-date", amzDate),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"),
        ]
    }
}
