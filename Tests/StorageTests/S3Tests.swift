import Archiving
import Crypto
import Foundation
import Testing
import TestSupport
@testable import Storage

@Suite("S3 XML answers")
struct S3XMLTests {
    /// Found by the S3 XML fuzz target: U+0605 joins the character after it into one Character,
    /// so Character-wise searching missed the `&` and `"` (and tags) right after it.
    @Test func charactersThatJoinTheNextOneDoNotHideEntitiesOrTags() {
        let mark = "\u{0605}", quote = String(UnicodeScalar(34))
        for text in ["&" + mark + quote, "a" + mark + "<b>" + mark + "&c", "plain", "ü &#x1F600; &#99999999999;"] {
            let back = S3XML.unescape(S3XML.escape(text))
            #expect(back == text, "\(text.debugDescription)")
        }
        let unescaped = S3XML.unescape("&amp;" + mark + "&quot;")
        #expect(unescaped == "&" + mark + quote)
        let keys = S3XML.values("Key", in: "<Contents><Key>x" + mark + "</Key></Contents><Key>&lt;y&gt;</Key>")
        #expect(keys == ["x" + mark, "<y>"])
        let uploads = S3XML.records("Upload", in: "<Upload>" + mark + "<UploadId>1</UploadId></Upload>").map { S3XML.value("UploadId", in: $0) }
        #expect(uploads == ["1"])
    }
}

@Suite("S3 credentials")
struct S3CredentialsTests {
    @Test func environmentAndFileSources() throws {
        let fromEnv = try S3Credentials.load(source: "env:CCAT_S3_X", location: "lta",
                                             environment: ["CCAT_S3_X_ACCESS_KEY_ID": "AK", "CCAT_S3_X_SECRET_ACCESS_KEY": "SK"])
        #expect(fromEnv.accessKeyID == "AK" && fromEnv.secretAccessKey == "SK" && fromEnv.sessionToken == nil)
        let missing = #expect(throws: StorageError.self) { try S3Credentials.load(source: "env:CCAT_S3_X", location: "lta", environment: [:]) }
        #expect(missing?.kind == .credentials)
        #expect(missing?.description.contains("CCAT_S3_X_ACCESS_KEY_ID") == true)

        let dir = try scratch("creds")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("keys").path
        try "[default]\n# test keys\naws_access_key_id = AK2\naws_secret_access_key=SK2\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let open = #expect(throws: StorageError.self) { try S3Credentials.load(source: "file:\(file)", location: "lta") }
        #expect(open?.description.contains("chmod 600") == true)
        chmod(file, 0o600)
        let fromFile = try S3Credentials.load(source: "file:\(file)", location: "lta")
        #expect(fromFile.accessKeyID == "AK2" && fromFile.secretAccessKey == "SK2")
    }

    /// The "GET Object" example of the S3 SigV4 documentation, with its published signature.
    @Test func signatureMatchesTheAwsDocumentationExample() throws {
        let signer = SigV4Signer(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
        let date = try #require(ISO8601DateFormatter().date(from: "2013-05-24T00:00:00Z"))
        let headers = signer.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
                                  headers: [("Range", "bytes=0-9"), ("x-amz-content-sha256", S3Store.emptySHA256)],
                                  payloadSHA256: S3Store.emptySHA256, date: date)
        #expect(headers.first { $0.0 == "x-amz-date" }?.1 == "20130524T000000Z")
        #expect(headers.first { $0.0 == "Authorization" }?.1 == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// Our signatures equal botocore's (what aws-cli and boto3 send) for awkward keys, encoded
    /// query values, metadata and session tokens.
    @Test func signaturesAgreeWithBotocore() throws {
        let python = try TestEnvironment.botocorePython()
        let store = S3Store(name: "lta", endpointURL: "http://127.0.0.1:9000", bucket: "bkt", region: "eu-central-1", prefix: "ccat/raw",
                            pathStyle: true, credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "se/cr+et", sessionToken: "tok=en"))
        let cases: [(String, String?, [(String, String)], [(String, String)])] = [
            ("PUT", "obs 1/ümlaut's \"pkg\"+&=.tar", [], [("x-amz-meta-sha256", String(repeating: "a", count: 64))]),
            ("GET", nil, [("list-type", "2"), ("prefix", "ccat/raw/a b/ü&x=y"), ("max-keys", "2"), ("continuation-token", "1/AbC+dE==")], []),
            ("GET", nil, [("uploads", ""), ("prefix", "ccat/raw/x.tar")], []),
            ("PUT", "x.tar", [("uploadId", "2~VOSS/u+1=="), ("partNumber", "10")], []),
            ("POST", "x.tar", [("uploads", "")], [("Content-Type", "application/xml")]),
        ]
        var lines: [String] = []
        for (method, key, query, headers) in cases {
            let request = store.request(method, key, query: query, headers: headers, payloadSHA256: S3Store.emptySHA256)
            let auth = request.headers.first { $0.0 == "Authorization" }!.1
            let signed = request.headers.filter { $0.0 != "Authorization" }
            let json = try JSONSerialization.data(withJSONObject: ["method": method, "url": request.url, "auth": auth,
                                                                  "headers": signed.map { [$0.0, $0.1] }])
            lines.append(String(decoding: json, as: UTF8.self))
        }
        let script = """
            import json, sys
            from botocore.auth import S3SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            for line in sys.stdin.read().splitlines():
                case = json.loads(line)
                headers = dict((k, v) for k, v in case["headers"] if k != "x-amz-date")
                request = AWSRequest(method=case["method"], url=case["url"], headers=headers)
                auth = S3SigV4Auth(Credentials("AKIDEXAMPLE", "se/cr+et", "tok=en"), "s3", "eu-central-1")
                # add_auth's steps, at the timestamp we signed with (not botocore's clock).
                request.context["timestamp"] = dict(case["headers"])["x-amz-date"]
                auth._modify_request_before_signing(request)
                signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
                ours = case["auth"].rsplit("Signature=", 1)[1]
                print("same" if signature == ours else "differs: " + case["url"] + "\\n  ours:     " + ours + "\\n  botocore: " + signature
                      + "\\n" + auth.canonical_request(request))
            """
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("sigv4-\(UUID().uuidString).jsonl")
        try lines.joined(separator: "\n").write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try runProcess("/bin/sh", ["-c", "exec \"$0\" -c \"$1\" < \"$2\"", python, script, input.path])
        #expect(result.status == 0, "\(result.stderr)")
        let verdicts = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).filter { $0.hasPrefix("same") || $0.hasPrefix("differs") }
        #expect(verdicts.count == cases.count, "\(result.stdout)\(result.stderr)")
        #expect(verdicts.allSatisfy { $0 == "same" }, "\(result.stdout)")
    }

    @Test func keysAndQueriesAreEncodedForSigV4() {
        #expect(S3Store.encode("a b/ü+~.tar", keepSlash: true) == "a%20b/%C3%BC%2B~.tar")
        #expect(S3Store.encode("x/y=z&", keepSlash: false) == "x%2Fy%3Dz%26")
        let store = S3Store(name: "lta", endpointURL: "http://127.0.0.1:9000/", bucket: "bkt", region: "us-east-1", prefix: "ccat",
                            pathStyle: true, credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
        #expect(store.url("p q.tar", query: [("uploadId", "u/1"), ("partNumber", "2")]) == "http://127.0.0.1:9000/bkt/ccat/p%20q.tar?partNumber=2&uploadId=u%2F1")
        let virtual = S3Store(name: "lta", endpointURL: "https://s3.example.org", bucket: "bkt", region: "eu", prefix: "",
                              pathStyle: false, credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
        #expect(virtual.url(nil, query: [("uploads", "")]) == "https://bkt.s3.example.org/?uploads=")
        #expect(S3XML.values("Key", in: "<Contents><Key>a&amp;b &#233;</Key></Contents><Contents><Key>c</Key></Contents>") == ["a&b é", "c"])
    }
}

/// A fresh bucket on the S3 test server.
func testBucket(settings: S3Settings = S3Settings(), prefix: String = "archive") throws -> S3Store {
    let endpoint = try TestEnvironment.requireS3Endpoint()
    let keys = TestEnvironment.s3Keys()
    let store = S3Store(name: "test_lta", endpointURL: endpoint, bucket: "ccat-\(UUID().uuidString.lowercased().prefix(18))", region: "us-east-1",
                        prefix: prefix, pathStyle: true, credentials: S3Credentials(accessKeyID: keys.accessKeyID, secretAccessKey: keys.secretAccessKey),
                        settings: settings)
    try store.createBucket()
    return store
}

@Suite("S3 storage against the S3 test server", .enabled(if: TestEnvironment.runS3Tests, "requires the S3 test server: run 'make test'"))
struct S3StoreTests {
    @Test func singlePutRoundTripHeadListDelete() throws {
        let dir = try scratch("s3")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket()
        let source = try randomFile(dir.appendingPathComponent("a.tar"), size: 300_001)
        let key = "obs 1/ümlaut's \"pkg\"+&.tar"
        #expect(try store.head(key) == nil)
        let stored = try store.upload(file: source.path, to: key, sha256: source.sha256, shouldStop: never)
        #expect(stored.size == 300_001 && stored.sha256 == source.sha256)
        #expect(try store.holds(key, size: 300_001, sha256: source.sha256))
        #expect(try store.list(prefix: "obs 1/").map(\.key) == [key])

        let back = dir.appendingPathComponent("back.tar").path
        let fetched = try store.download(key, to: back, expectedSize: 300_001, expectedSHA256: source.sha256, shouldStop: never)
        #expect(fetched.sha256 == source.sha256)
        #expect(try FileChecksum.sha256(of: back).sha256 == source.sha256)

        let wrong = dir.appendingPathComponent("wrong.tar").path
        let mismatch = #expect(throws: StorageError.self) {
            try store.download(key, to: wrong, expectedSize: nil, expectedSHA256: String(repeating: "b", count: 64), shouldStop: never)
        }
        #expect(mismatch?.kind == .checksumMismatch)
        #expect(!FileManager.default.fileExists(atPath: wrong) && partials(in: dir).isEmpty)

        try store.delete(key)
        try store.delete(key)
        #expect(try store.head(key) == nil)
        let missing = #expect(throws: StorageError.self) {
            try store.download(key, to: wrong, expectedSize: nil, expectedSHA256: nil, shouldStop: never)
        }
        #expect(missing?.kind == .notFound)
        #expect(store.probe().reachable)
    }

    @Test func multipartUploadInParallelPartsRoundTrips() throws {
        let dir = try scratch("s3-multipart")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket(settings: S3Settings(partSize: 5 << 20, parallelParts: 3))
        let size = (17 << 20) + 12_345  // four parts, the last one short
        let source = try randomFile(dir.appendingPathComponent("big.tar"), size: size)
        let stored = try store.upload(file: source.path, to: "big.tar", sha256: source.sha256, shouldStop: never)
        #expect(stored.size == Int64(size) && stored.sha256 == source.sha256)
        #expect(try store.incompleteUploads(of: "big.tar").isEmpty)
        let back = dir.appendingPathComponent("back.tar").path
        try store.download("big.tar", to: back, expectedSize: Int64(size), expectedSHA256: source.sha256, shouldStop: never)
        #expect(try FileChecksum.sha256(of: back).sha256 == source.sha256)
    }

    /// S3's additional checksums: the server keeps the SHA-256 of a PUT object, and for a multipart
    /// object the SHA-256 of its parts' SHA-256s; aws-cli reads them back, and they agree with the
    /// local file hashed here part by part.
    @Test func serverKeepsTheSHA256OfTheObjectAndOfEveryPart() throws {
        let dir = try scratch("s3-checksums")
        defer { try? FileManager.default.removeItem(at: dir) }
        let aws = try TestEnvironment.awsCLI()
        let partSize = 5 << 20
        let store = try testBucket(settings: S3Settings(partSize: partSize, parallelParts: 3))
        for size in [70_000, (3 * partSize) + 99] {
            let source = try randomFile(dir.appendingPathComponent("c\(size).tar"), size: size)
            try store.upload(file: source.path, to: "c\(size).tar", sha256: source.sha256, shouldStop: never)
            let data = try Data(contentsOf: URL(fileURLWithPath: source.path))
            let expected: String
            if size <= partSize {
                expected = Data(SHA256.hash(data: data)).base64EncodedString()
            } else {
                let parts = stride(from: 0, to: size, by: partSize).map { Array(SHA256.hash(data: data[$0..<min($0 + partSize, size)])) }
                expected = Data(SHA256.hash(data: parts.flatMap { $0 })).base64EncodedString() + "-\(parts.count)"
            }
            let head = try runProcess(aws.path, ["--endpoint-url", store.endpointURL, "s3api", "head-object", "--checksum-mode", "ENABLED",
                                                 "--bucket", store.bucket, "--key", "archive/c\(size).tar"], environment: aws.environment)
            #expect(head.status == 0, "\(head.stderr)")
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(head.stdout.utf8)) as? [String: Any])
            // S3 appends "-<parts>" to a multipart object's checksum; moto leaves it out.
            #expect((fields["ChecksumSHA256"] as? String)?.split(separator: "-").first == expected.split(separator: "-").first,
                    "size \(size): \(head.stdout)")
        }
        // Without them (for servers that lack the feature) the object keeps only our metadata.
        let plain = try testBucket(settings: S3Settings(partSize: partSize, parallelParts: 3, checksums: false))
        let source = try randomFile(dir.appendingPathComponent("plain.tar"), size: partSize + 1)
        try plain.upload(file: source.path, to: "plain.tar", sha256: source.sha256, shouldStop: never)
        let head = try runProcess(aws.path, ["--endpoint-url", plain.endpointURL, "s3api", "head-object", "--checksum-mode", "ENABLED",
                                             "--bucket", plain.bucket, "--key", "archive/plain.tar"], environment: aws.environment)
        #expect(head.status == 0 && !head.stdout.contains("ChecksumSHA256"), "\(head.stdout)")
    }

    @Test func damagedSourceIsNotUploadedAndLeavesNoIncompleteUpload() throws {
        let dir = try scratch("s3-damaged")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket(settings: S3Settings(partSize: 5 << 20, parallelParts: 2))
        for size in [40_000, (11 << 20) + 1] {
            let source = try randomFile(dir.appendingPathComponent("f\(size).tar"), size: size)
            try flipByte(source.path, at: UInt64(size - 2))
            let error = #expect(throws: StorageError.self) {
                try store.upload(file: source.path, to: "f\(size).tar", sha256: source.sha256, shouldStop: never)
            }
            #expect(error?.kind == .checksumMismatch)
            #expect(try store.head("f\(size).tar") == nil)
            #expect(try store.incompleteUploads(of: "f\(size).tar").isEmpty)
        }
    }

    @Test func staleMultipartUploadsOfAKilledRunAreAbortedOnRetry() throws {
        let dir = try scratch("s3-stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket(settings: S3Settings(partSize: 5 << 20, parallelParts: 2))
        let source = try randomFile(dir.appendingPathComponent("big.tar"), size: (10 << 20) + 3)
        // A stop during the parts (like a killed runner) aborts its own upload...
        #expect(throws: StopRequestedDuringCopy.self) {
            try store.upload(file: source.path, to: "big.tar", sha256: source.sha256, shouldStop: { true })
        }
        #expect(try store.incompleteUploads(of: "big.tar").isEmpty)
        // ...and one that was left behind by a SIGKILL (started with aws-cli here) is aborted by the next upload.
        let aws = try TestEnvironment.awsCLI()
        let started = try runProcess(aws.path, ["--endpoint-url", store.endpointURL, "s3api", "create-multipart-upload",
                                                "--bucket", store.bucket, "--key", "archive/big.tar"], environment: aws.environment)
        #expect(started.status == 0, "\(started.stderr)")
        #expect(try store.incompleteUploads(of: "big.tar").count == 1)
        // An audit sees it once it is old enough (here: any start before a minute from now; the test
        // server reports every upload as started in 2010, so no cutoff in the past tells it apart).
        let unfinished = try store.incompleteWrites(startedBefore: Date().addingTimeInterval(60))
        #expect(unfinished.map(\.key) == ["big.tar"] && unfinished[0].modified != nil)
        try store.upload(file: source.path, to: "big.tar", sha256: source.sha256, shouldStop: never)
        #expect(try store.incompleteUploads(of: "big.tar").isEmpty)
        #expect(try store.holds("big.tar", size: (10 << 20) + 3, sha256: source.sha256))
    }

    /// What fixity and repair need: a read-back that hashes the whole object, a listing page by
    /// page with modification times, and a move aside that keeps bytes and metadata, in one copy
    /// or, above the single-copy limit, in parts.
    @Test func readBackListPagesAndMoveAside() throws {
        let dir = try scratch("s3-integrity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket(settings: S3Settings(partSize: 5 << 20, parallelParts: 2))
        let small = try randomFile(dir.appendingPathComponent("small"), size: 1000)
        let big = try randomFile(dir.appendingPathComponent("big"), size: (11 << 20) + 7)
        try store.upload(file: small.path, to: "pkg/small's.tar", sha256: small.sha256, shouldStop: never)
        try store.upload(file: big.path, to: "pkg/big.tar", sha256: big.sha256, shouldStop: never)
        #expect(try store.readBack("pkg/small's.tar", shouldStop: never) == StoredObject(key: "pkg/small's.tar", size: 1000, sha256: small.sha256))
        #expect(try store.readBack("pkg/none.tar", shouldStop: never) == nil)
        var pages: [[StoredObject]] = []
        try store.listPages(prefix: "", pageSize: 1) { pages.append($0) }
        #expect(pages.count == 2 && pages.allSatisfy { $0.count == 1 && $0[0].modified.map { abs($0.timeIntervalSinceNow) < 600 } == true })

        try store.move("pkg/small's.tar", to: ".ccat-quarantine/copy-1/pkg/small's.tar")
        try store.move("pkg/big.tar", to: ".ccat-quarantine/copy-2/pkg/big.tar", singleCopyLimit: 5 << 20, partSize: 5 << 20)
        #expect(try store.head("pkg/small's.tar") == nil && store.head("pkg/big.tar") == nil)
        for (key, file) in [(".ccat-quarantine/copy-1/pkg/small's.tar", small), (".ccat-quarantine/copy-2/pkg/big.tar", big)] {
            #expect(try store.readBack(key, shouldStop: never)?.sha256 == file.sha256, "\(key)")
            #expect(try store.head(key)?.sha256 == file.sha256, "the recorded SHA-256 stays with the object")
            #expect(try store.incompleteUploads(of: key).isEmpty)
        }
        let gone = #expect(throws: StorageError.self) { try store.move("pkg/big.tar", to: "elsewhere") }
        #expect(gone?.kind == .notFound)
    }

    @Test func listingFollowsContinuationTokens() throws {
        let dir = try scratch("s3-list")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try testBucket()
        let source = try randomFile(dir.appendingPathComponent("x"), size: 10)
        let keys = (0..<7).map { "pkg/\($0).tar" }
        for key in keys { try store.upload(file: source.path, to: key, sha256: source.sha256, shouldStop: never) }
        try store.upload(file: source.path, to: "other/z.tar", sha256: source.sha256, shouldStop: never)
        #expect(try store.list(prefix: "pkg/", pageSize: 2).map(\.key) == keys)
        #expect(try store.list(prefix: "", pageSize: 3).count == 8)
    }

    @Test func objectsAreInterchangeableWithAwsCli() throws {
        let dir = try scratch("s3-awscli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let aws = try TestEnvironment.awsCLI()
        let store = try testBucket(settings: S3Settings(partSize: 5 << 20, parallelParts: 2))
        for size in [1_000, (12 << 20) + 7] {
            // Ours, read by aws-cli.
            let source = try randomFile(dir.appendingPathComponent("ours-\(size).tar"), size: size)
            try store.upload(file: source.path, to: "ours/\(size) ü.tar", sha256: source.sha256, shouldStop: never)
            let copy = dir.appendingPathComponent("aws-read-\(size)").path
            let read = try runProcess(aws.path, ["--endpoint-url", store.endpointURL, "s3", "cp",
                                                 "s3://\(store.bucket)/archive/ours/\(size) ü.tar", copy], environment: aws.environment)
            #expect(read.status == 0, "\(read.stderr)")
            #expect(try FileChecksum.sha256(of: copy).sha256 == source.sha256)

            // aws-cli's (multipart above its 8 MB threshold), read by us and verified against the local file.
            let theirs = try randomFile(dir.appendingPathComponent("theirs-\(size).tar"), size: size)
            let wrote = try runProcess(aws.path, ["--endpoint-url", store.endpointURL, "s3", "cp", theirs.path,
                                                  "s3://\(store.bucket)/archive/theirs/\(size).tar"], environment: aws.environment)
            #expect(wrote.status == 0, "\(wrote.stderr)")
            #expect(try store.head("theirs/\(size).tar")?.size == Int64(size))
            let back = dir.appendingPathComponent("ours-read-\(size)").path
            try store.download("theirs/\(size).tar", to: back, expectedSize: Int64(size), expectedSHA256: theirs.sha256, shouldStop: never)
        }
    }

    @Test func unreachableEndpointIsATransportError() throws {
        let store = S3Store(name: "lta", endpointURL: "http://127.0.0.1:9", bucket: "nowhere", region: "us-east-1", prefix: "",
                            pathStyle: true, credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"),
                            settings: S3Settings(attempts: 2, retryDelaySeconds: 0.01))
        let error = #expect(throws: StorageError.self) { try store.head("x") }
        #expect(error?.kind == .transport)
        #expect(!store.probe().reachable)
    }
}
