import FuzzSupport
import Topology

/// The topology file: YAML with anchors and aliases, then every field's rules. Nothing may crash,
/// trap on arithmetic, or run away (libFuzzer's -timeout and -rss_limit_mb catch the last).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTopology(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = inputText(data, size)
    _ = try? TopologyParser.parse(text, file: "fuzz.yaml")
    return 0
}

@_cdecl("FuzzTopology_main")
func fuzzTopologyMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzTopology(data, size) }
}
