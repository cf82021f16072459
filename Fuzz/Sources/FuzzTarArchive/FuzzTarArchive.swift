import FuzzSupport
import Archiving
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory for this process: `<tmp>/ccat-fuzz-tar-<pid>/{input.tar,jail/target}`.
let scratch: String = {
    let path = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/ccat-fuzz-tar-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// Every regular file below `directory`, relative to it; fails on anything else but directories.
func regularFiles(_ directory: String) -> [String] {
    var found: [String] = []
    let walker = FileManager.default.enumerator(atPath: directory)
    while let relative = walker?.nextObject() as? String {
        switch walker?.fileAttributes?[.type] as? FileAttributeType {
        case .typeRegular?: found.append(relative)
        case .typeDirectory?: continue
        default: fatalError("extraction left \(relative), which is neither a file nor a directory")
        }
    }
    return found.sorted()
}

/// A tar archive from outside, scanned and extracted as unpacking and staging do: nothing may
/// land outside the target, nothing but regular files and directories may be created, and what
/// is on disk afterwards is exactly the members reported.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTarArchive(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let archive = scratch + "/input.tar", jail = scratch + "/jail"
    FileManager.default.createFile(atPath: archive, contents: data.map { Data(bytes: $0, count: size) } ?? Data())
    try? FileManager.default.removeItem(atPath: jail)
    try? FileManager.default.createDirectory(atPath: jail + "/target", withIntermediateDirectories: true)
    let scanned = try? TarArchive.scan(archive)
    let extracted = try? TarArchive.extract(RootedPath(file: archive), into: RootedPath(root: jail, relative: "target"))
    guard (try? FileManager.default.contentsOfDirectory(atPath: jail)) == ["target"] else {
        fatalError("extraction wrote beside its target: \((try? FileManager.default.contentsOfDirectory(atPath: jail)) ?? [])")
    }
    let onDisk = regularFiles(jail + "/target")
    if let extracted {
        guard onDisk == extracted.members.map(\.path).sorted() || Set(extracted.members.map(\.path)).count != extracted.members.count else {
            fatalError("on disk \(onDisk), reported \(extracted.members.map(\.path))")
        }
        guard let scanned, scanned.sha256 == extracted.sha256, scanned.members == extracted.members else {
            fatalError("scan and extraction disagree")
        }
    } else {
        // A refused archive leaves no partial file behind.
        if let partial = onDisk.first(where: { $0.hasSuffix(".ccat-partial") }) { fatalError("left \(partial)") }
    }
    return 0
}

@_cdecl("FuzzTarArchive_main")
func fuzzTarArchiveMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzzTarArchive(data, size) }
}
