import ArgumentParser
import CCatCLI

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the version of ccat and of the system libraries it links.")

    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Output: Encodable {
        var ccat: String
        var libraries: LinkedLibraries
    }

    func run() async throws {
        let libraries = LinkedLibraries.current()
        if json {
            try printJSON(Output(ccat: ccatVersion, libraries: libraries))
        } else {
            print("ccat \(ccatVersion)")
            print("libpq \(libraries.libpq)")
            print(libraries.libarchive)
            print(libraries.libcurl)
        }
    }
}
