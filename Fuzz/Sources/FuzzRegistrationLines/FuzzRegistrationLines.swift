import FuzzSupport
import OpsDB

/// `ccat files register --batch` input: every line accepted must pass the registration rules on
/// its own, with a checksum of 64 lower-case hexadecimal digits and no line break left in a field.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRegistrationLines(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = inputText(data, size)
    guard let lines = try? RegistrationLine.parse(text) else { return 0 }
    for line in lines {
        do { try line.check() } catch { fatalError("accepted a line that breaks the rules: \(line): \(error)") }
        guard RegistrationRules.isSHA256(line.sha256), line.sha256 == line.sha256.lowercased(), line.size >= 0 else {
            fatalError("accepted a bad size or checksum: \(line)")
        }
        for field in [line.path, line.obsID, line.instrument ?? ""] where field.contains("\n") || field.contains("\r") || field.contains("\t") {
            fatalError("a field kept a separator: \(field.debugDescription)")
        }
    }
    return 0
}

@_cdecl("FuzzRegistrationLines_main")
func fuzzRegistrationLinesMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzRegistrationLines(data, size) }
}
