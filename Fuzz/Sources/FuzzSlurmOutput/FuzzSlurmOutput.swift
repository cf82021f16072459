import FuzzSupport
import Scheduling

/// What `sbatch --parsable`, `squeue` and `sacct` print, as the dispatcher and tracker read it.
/// An accepted job id is all digits; every job read has a known state.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSlurmOutput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = inputText(data, size)
    if let submitted = try? SlurmParsing.parseSbatch(text), submitted.jobID.isEmpty || !submitted.jobID.allSatisfy(\.isASCII) || !submitted.jobID.allSatisfy(\.isNumber) {
        fatalError("sbatch output gave job id \(submitted.jobID.debugDescription)")
    }
    for jobs in [try? SlurmParsing.parseSqueue(text), try? SlurmParsing.parseSacct(text)] {
        for job in jobs ?? [] where job.jobID.isEmpty {
            fatalError("a job without an id from \(text.debugDescription)")
        }
    }
    _ = SlurmParsing.state(text)
    return 0
}

@_cdecl("FuzzSlurmOutput_main")
func fuzzSlurmOutputMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzSlurmOutput(data, size) }
}
