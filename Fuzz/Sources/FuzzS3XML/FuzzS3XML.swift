import FuzzSupport
@testable import Storage

/// S3's XML answers (listings with their times, errors, uploads) as the store reads them; escaping and unescaping
/// a text gives it back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzS3XML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = inputText(data, size)
    for record in S3XML.records("Contents", in: text) {
        _ = S3XML.value("Key", in: record)
        _ = S3XML.value("Size", in: record).flatMap { Int64($0) }
        _ = S3XML.value("LastModified", in: record).flatMap(S3XML.date)
    }
    for record in S3XML.records("Upload", in: text) {
        _ = S3XML.value("Initiated", in: record).flatMap(S3XML.date)
    }
    _ = S3XML.value("Code", in: text)
    _ = S3XML.values("UploadId", in: text)
    guard S3XML.unescape(S3XML.escape(text)) == text else {
        fatalError("escape/unescape changed \(text.debugDescription)")
    }
    return 0
}

@_cdecl("FuzzS3XML_main")
func fuzzS3XMLMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzS3XML(data, size) }
}
