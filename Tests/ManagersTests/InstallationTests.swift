import Foundation
import Testing
import TestSupport

/// What `make install`, `make deb` and `scripts/install-deps.sh` promise an admin: an installed
/// tree that runs on its own, a package that carries it, and an installer that says what to do.
@Suite("installation")
struct InstallationTests {
    /// The build's binaries and the manual generator `make test` builds beside them.
    static func requireBuiltTools() throws -> URL? {
        let bin = TestEnvironment.binDirectory
        guard FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("generate-manual").path) else {
            if TestEnvironment.isCI {
                throw TestSetupError(description: "\(bin.path)/generate-manual is missing: 'make test' builds it (swift build --product generate-manual)")
            }
            return nil
        }
        return bin
    }

    static func script(_ name: String) -> String {
        TestEnvironment.repositoryRoot.appendingPathComponent("scripts/\(name)").path
    }

    /// Every command path of an executable, from the description swift-argument-parser dumps
    /// (`ccat`, `ccat stage`, `ccat stage request`, ...), without the generated `help`.
    static func commandPaths(of executable: String) async throws -> [[String]] {
        let dump = try await runLongProcess(executable, ["--experimental-dump-help"], environment: [:])
        #expect(dump.status == 0, "\(dump.stderr)")
        struct Info: Decodable { struct Command: Decodable { var commandName: String; var subcommands: [Command]? }; var command: Command }
        let info = try JSONDecoder().decode(Info.self, from: Data(dump.stdout.utf8))
        func walk(_ command: Info.Command, _ prefix: [String]) -> [[String]] {
            let path = prefix + [command.commandName]
            return [path] + (command.subcommands ?? []).filter { $0.commandName != "help" }.flatMap { walk($0, path) }
        }
        return walk(info.command, [])
    }

    @Test func installedTreeRunsTheDemoPipelineOnItsOwn() async throws {
        guard let bin = try Self.requireBuiltTools() else { return }
        _ = try TestEnvironment.requireS3Endpoint()
        _ = try TestEnvironment.requireMungeSocket()
        let scratch = try testScratchDirectory("install")
        let prefix = scratch.appendingPathComponent("prefix")
        let install = try await runLongProcess("/bin/bash", [Self.script("install.sh"), bin.path, prefix.path], environment: ProcessInfo.processInfo.environment)
        try #require(install.status == 0, "install.sh failed:\n\(install.stderr)")

        let installed = prefix.appendingPathComponent("bin")
        let share = prefix.appendingPathComponent("share")
        // Nothing of the build tree is beside the installed binaries.
        #expect(try FileManager.default.contentsOfDirectory(atPath: installed.path).sorted() == ["ccat", "ccat-runner"])
        // A man page for every command and subcommand of both executables, titled as it is named.
        for executable in ["ccat", "ccat-runner"] {
            for path in try await Self.commandPaths(of: installed.appendingPathComponent(executable).path) {
                let name = path.joined(separator: "-")
                let page = share.appendingPathComponent("man/man1/\(name).1.gz").path
                let text = try await runLongProcess("/bin/sh", ["-c", "gzip -dc \"$0\"", page], environment: [:])
                #expect(text.status == 0, "no man page \(name).1.gz: \(text.stderr)")
                #expect(text.stdout.contains(".Dt \(name.uppercased()) 1"), "\(name): \(text.stdout.prefix(200))")
            }
        }
        // Completions for three shells; the bash one parses and knows the subcommands.
        let bash = share.appendingPathComponent("bash-completion/completions/ccat").path
        #expect(try await runLongProcess("/bin/bash", ["-n", bash], environment: [:]).status == 0)
        #expect(try String(contentsOfFile: bash, encoding: .utf8).contains("stage"))
        for file in ["zsh/site-functions/_ccat", "fish/vendor_completions.d/ccat.fish", "zsh/site-functions/_ccat-runner"] {
            #expect(FileManager.default.fileExists(atPath: share.appendingPathComponent(file).path), "\(file)")
        }
        for file in ["README.md", "docs/admin-guide.md", "docs/scientist-guide.md", "docs/developer-guide.md", "examples/ccat.example.yaml", "examples/topology.example.yaml",
                     "examples/ccat-alerts.yaml", "examples/ccat-dashboard.json"] {
            #expect(FileManager.default.fileExists(atPath: share.appendingPathComponent("doc/ccat-data-transfer/\(file)").path), "\(file)")
        }
        // The unit starts the installed daemon, and systemd accepts it (man pages are checked above).
        let unit = prefix.appendingPathComponent("lib/systemd/system/ccat-daemon.service").path
        let unitText = try String(contentsOfFile: unit, encoding: .utf8)
        #expect(unitText.contains("ExecStart=\(installed.path)/ccat daemon"))
        #expect(unitText.contains("User=ccat") && unitText.contains("StateDirectory=ccat") && unitText.contains("Restart=on-failure"))
        if let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: FileManager.default.isExecutableFile(atPath:)) {
            let verify = try await runLongProcess(analyze, ["verify", "--man=no", unit], environment: [:])
            #expect(verify.status == 0 && verify.stderr.isEmpty, "systemd-analyze verify: \(verify.stderr)")
        }

        // A marker in the installed template shows which templates the daemon rendered.
        let marker = "# installed-template-\(UUID().uuidString)"
        let template = share.appendingPathComponent("ccat/jobscripts/default.sh.mustache")
        let handle = try FileHandle(forWritingTo: template)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\n\(marker)\n".utf8))
        try handle.close()

        // The demo pipeline with the installed binaries alone: migrations, templates and the
        // runner are found from the installation, not from this checkout.
        let demo = scratch.appendingPathComponent("demo")
        var environment = ProcessInfo.processInfo.environment
        environment["CCAT_JOBSCRIPTS"] = nil
        environment.merge(["DEMO_DIR": demo.path, "DEMO_DATABASE": "ccat_installed", "DEMO_OBSERVATIONS": "4", "DEMO_FILES": "2",
                           "DEMO_TIMEOUT": "600", "SCHEDULER": "local"]) { $1 }
        let run = try await runLongProcess("/bin/bash", [Self.script("demo.sh"), installed.path], environment: environment)
        #expect(run.status == 0, "demo with the installed binaries failed:\n\(run.stdout.suffix(3000))\n\(run.stderr.suffix(3000))")
        #expect(run.stdout.contains("staged files match the instrument's checksums"), "\(run.stdout.suffix(2000))")

        let scripts = (FileManager.default.enumerator(atPath: demo.appendingPathComponent("state").path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix("/job.sh") }
        #expect(!scripts.isEmpty)
        for script in scripts {
            let text = try String(contentsOfFile: demo.appendingPathComponent("state/\(script)").path, encoding: .utf8)
            #expect(text.contains(marker), "\(script) was not rendered from the installed templates")
            #expect(text.contains("exec '\(installed.path)/ccat-runner' run") || text.contains("exec \(installed.path)/ccat-runner run"),
                    "\(script) does not run the installed runner")
        }
    }

    @Test func debianPackageCarriesTheInstallationAndItsDependencies() async throws {
        guard let bin = try Self.requireBuiltTools() else { return }
        let scratch = try testScratchDirectory("deb")
        var environment = ProcessInfo.processInfo.environment
        environment["DIST"] = scratch.path
        let build = try await runLongProcess("/bin/bash", [Self.script("make-deb.sh"), bin.path], environment: environment)
        try #require(build.status == 0, "make-deb.sh failed:\n\(build.stderr)")
        let deb = build.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb.hasPrefix(scratch.path) && deb.hasSuffix("_amd64.deb"), "\(deb)")

        let fields = try await runLongProcess("/usr/bin/dpkg-deb", ["--field", deb, "Package", "Version", "Depends"], environment: [:])
        #expect(fields.status == 0, "\(fields.stderr)")
        #expect(fields.stdout.contains("Package: ccat-data-transfer"))
        for library in ["libpq5", "libarchive13", "libcurl4", "libmunge2", "libc6"] {
            #expect(fields.stdout.contains(library), "Depends lacks \(library): \(fields.stdout)")
        }
        let listing = try await runLongProcess("/usr/bin/dpkg-deb", ["--contents", deb], environment: [:])
        #expect(listing.status == 0)
        for path in ["./usr/bin/ccat", "./usr/bin/ccat-runner", "./usr/share/ccat/jobscripts/default.sh.mustache",
                     "./usr/share/ccat/migrations/0001_ops_database.sql", "./usr/share/man/man1/ccat-stage-request.1.gz",
                     "./lib/systemd/system/ccat-daemon.service", "./usr/lib/sysusers.d/ccat.conf",
                     "./usr/share/bash-completion/completions/ccat", "./usr/share/zsh/vendor-completions/_ccat",
                     "./usr/share/doc/ccat-data-transfer/copyright", "./usr/share/doc/ccat-data-transfer/examples/ccat.example.yaml",
                     "./usr/share/ccat/slurm/burst_buffer.lua", "./usr/share/ccat/slurm/ccat_burst_buffer.conf"] {
            #expect(listing.stdout.contains(" \(path)\n"), "\(path) is not in the package")
        }
        // Everything belongs to root, nothing is writable by others.
        for line in listing.stdout.split(separator: "\n") {
            #expect(line.contains(" root/root "), "\(line)")
            #expect(line.dropFirst(8).first != "w", "\(line)")
        }
        // Unpacked anywhere, the binaries find the schema and templates of their own tree.
        let unpacked = scratch.appendingPathComponent("root")
        #expect(try await runLongProcess("/usr/bin/dpkg-deb", ["-x", deb, unpacked.path], environment: [:]).status == 0)
        let unit = try String(contentsOfFile: unpacked.appendingPathComponent("lib/systemd/system/ccat-daemon.service").path, encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/ccat daemon"))
        let version = try await runLongProcess(unpacked.appendingPathComponent("usr/bin/ccat").path, ["version"], environment: [:])
        #expect(version.status == 0 && version.stdout.hasPrefix("ccat "), "\(version.stderr)")
    }

    /// Not as root, the installer installs nothing and prints the one command that would.
    @Test func installerNotRunAsRootPrintsTheCommandToRun() async throws {
        guard getuid() == 0 else { return }   // it needs root to become another user
        // An empty package database: every package counts as missing (dpkg honours DPKG_ADMINDIR).
        let admin = try testScratchDirectory("dpkg-admin")
        #expect(FileManager.default.createFile(atPath: admin.appendingPathComponent("status").path, contents: Data()))
        chmod(admin.path, 0o755)
        let run = try await runLongProcess("/usr/sbin/runuser", ["-u", "nobody", "--", "/usr/bin/env", "DPKG_ADMINDIR=\(admin.path)",
                                                                "/bin/bash", Self.script("install-deps.sh"), "build"], environment: [:])
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("sudo apt-get update && sudo apt-get install -y --no-install-recommends pkg-config make libpq-dev libarchive-dev libcurl4-openssl-dev libmunge-dev"),
                "\(run.stderr)")
        // With the real package database, as CI leaves it, nothing is missing for the tests.
        let check = try await runLongProcess("/bin/bash", [Self.script("install-deps.sh"), "test", "--check"], environment: ProcessInfo.processInfo.environment)
        if TestEnvironment.isCI { #expect(check.status == 0, "\(check.stdout)") }
    }
}
