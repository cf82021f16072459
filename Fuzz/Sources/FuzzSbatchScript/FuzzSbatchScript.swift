import FuzzSupport
import Scheduling

/// The local scheduler's reading of a job script's `#SBATCH` lines, time limits and the
/// `%j`/`%x` patterns of output paths.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSbatchScript(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = inputText(data, size)
    _ = try? SbatchScriptOptions.parse(script: text)
    if let seconds = SbatchScriptOptions.parseTime(text), seconds < 0 {
        fatalError("a negative time limit from \(text.debugDescription)")
    }
    _ = SbatchScriptOptions.expand(text, jobID: "42", jobName: text)
    return 0
}

@_cdecl("FuzzSbatchScript_main")
func fuzzSbatchScriptMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzSbatchScript(data, size) }
}
