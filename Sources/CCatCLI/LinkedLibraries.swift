import CLibArchive
import CLibCurl
import CLibPQ

/// Versions of the system libraries this build links, for `version` output and bug reports.
public struct LinkedLibraries: Codable, Sendable {
    public var libpq: String
    public var libarchive: String
    public var libcurl: String

    public static func current() -> LinkedLibraries {
        let pq = Int(PQlibVersion())
        return LinkedLibraries(
            libpq: "\(pq / 10000).\(pq % 10000)",
            libarchive: String(cString: archive_version_details()),
            libcurl: String(cString: curl_version()))
    }
}

public let ccatVersion = "0.1.0"
