import CFuzzDriver

/// Hands the command line to libFuzzer, which runs `target` on every input (each as UTF-8 text
/// decoded leniently or as bytes, as the target likes). Returns libFuzzer's exit status.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                      _ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments, target)
}

/// The input as text: invalid UTF-8 becomes U+FFFD, as `String(decoding:as:)` does with a file.
public func inputText(_ data: UnsafePointer<UInt8>?, _ size: Int) -> String {
    guard let data else { return "" }
    return String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}
