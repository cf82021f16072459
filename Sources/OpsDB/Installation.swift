import Foundation

/// Where an installed ccat keeps the files it reads at run time. `make install` (and the Debian
/// package) lays them out the usual way: the executables in `PREFIX/bin`, the schema migrations
/// and the job-script templates in `PREFIX/share/ccat/`. In a build tree the same files are found
/// next to the executable (the resource bundle) or above it (the checkout's `jobscripts/`).
public enum Installation {
    /// The directory of the running executable, symbolic links resolved (so a link in
    /// `/usr/local/bin` to an executable elsewhere finds that executable's files).
    public static var executableDirectory: URL {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: target).deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.resolvingSymlinksInPath()
    }

    /// `PREFIX/share/ccat` of the installation the executable belongs to.
    public static var shareDirectory: URL {
        executableDirectory.appendingPathComponent("../share/ccat").standardized
    }
}
