import Foundation
import OpsDB
import Testing
import TestSupport
import Topology
@testable import Scheduling

@Suite("Job script rendering (template logic, real bash)")
struct JobScriptTests {
    static let builtin = TestEnvironment.repositoryRoot.appendingPathComponent("jobscripts").path
    static let hostile = [
        "two words", "it's \"quoted\"", "$(touch PWNED)", "`touch PWNED`", "a; touch PWNED", "line1\ntouch PWNED",
        "$HOME ${PATH} \\ back", "Grüße 観測", "",
    ]

    func context(environment: [(String, String)] = [("CCAT_DATABASE_URL", "host=/run/ccat dbname=ops")],
                 runner: String = "/opt/ccat/bin/ccat-runner") throws -> JobScriptContext {
        let profile = BatchProfile(partition: "transfer", account: "ccat", qos: "normal", timeLimitMinutes: 120, cpus: 4,
                                   memoryMB: 4096, constraint: "buffer&ib", nodelist: "node[01-02]", cluster: "cologne",
                                   extra: ["--exclusive", "--gres=none"])
        let directives = try SbatchDirectives.make(queue: "cologne_buffer_data_transfer", profile: profile,
                                                   stdoutPath: "/var/log/ccat/jobs/42/stdout.log", stderrPath: "/var/log/ccat/jobs/42/stderr.log",
                                                   submitToken: "7d6f3c9e-1111-4a5b-9c2d-000000000042", signalMarginSeconds: 300)
        return JobScriptContext(batchJobID: 42, queue: "cologne_buffer_data_transfer", operation: .dataTransfer, scheduler: .slurm,
                                directives: directives, runnerPath: runner, environment: environment)
    }

    @Test func defaultTemplateMatchesGolden() throws {
        let renderer = try JobScriptRenderer(builtinDirectory: Self.builtin)
        let script = try renderer.render(try context())
        let golden = try #require(Bundle.module.url(forResource: "Golden/default-data-transfer", withExtension: "sh"))
        let expected = try String(contentsOf: golden, encoding: .utf8)
            .replacingOccurrences(of: "@TEMPLATE@", with: "\(Self.builtin)/default.sh.mustache")
        #expect(script == expected)
    }

    @Test func hostileValuesStayLiteralData() throws {
        let renderer = try JobScriptRenderer(builtinDirectory: Self.builtin)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-jobscript-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        // A stand-in runner whose directory name is hostile too: it records its arguments and environment.
        let runnerDirectory = work.appendingPathComponent("bin dir $(touch PWNED) 'q'")
        try FileManager.default.createDirectory(at: runnerDirectory, withIntermediateDirectories: true)
        let runner = runnerDirectory.appendingPathComponent("ccat-runner")
        try """
            #!/bin/bash
            printf '%s\\0' "$@" > "$RECORD.args"
            for i in $(seq 0 \(Self.hostile.count - 1)); do v="HOSTILE_$i"; printf '%s\\0' "${!v}"; done > "$RECORD.env"
            """.write(to: runner, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: runner.path)
        var environment = Self.hostile.enumerated().map { ("HOSTILE_\($0.offset)", $0.element) }
        environment.append(("RECORD", work.appendingPathComponent("record").path))
        let script = try renderer.render(try context(environment: environment, runner: runner.path))
        let scriptURL = work.appendingPathComponent("job.sh")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)

        let syntax = try runProcess("/bin/bash", ["-n", scriptURL.path])
        #expect(syntax.status == 0, "bash -n: \(syntax.stderr)")
        let run = try runProcess("/bin/bash", [scriptURL.path], currentDirectory: work.path)
        #expect(run.status == 0, "\(run.stderr)")

        let args = try String(contentsOf: work.appendingPathComponent("record.args"), encoding: .utf8).split(separator: "\0", omittingEmptySubsequences: false).dropLast()
        #expect(Array(args) == ["run", "--batch-job", "42"])
        let values = try String(contentsOf: work.appendingPathComponent("record.env"), encoding: .utf8).split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(values == Self.hostile)
        // Nothing was executed: no file created by an injected command, anywhere we ran.
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("PWNED").path))
        #expect(!FileManager.default.fileExists(atPath: "PWNED"))
    }

    @Test func directivesRefuseValuesThatCouldBreakALine() throws {
        for bad in ["two words", "new\nline", "quote'd", "tab\there"] {
            #expect(throws: JobScriptError.self) {
                try SbatchDirectives.make(queue: "q", profile: BatchProfile(partition: bad), stdoutPath: "/o", stderrPath: "/e",
                                          submitToken: "t", signalMarginSeconds: 60)
            }
        }
        #expect(throws: JobScriptError.self) {
            try SbatchDirectives.make(queue: "q", profile: BatchProfile(extra: ["--comment=x\n#!/bin/sh"]), stdoutPath: "/o",
                                      stderrPath: "/e", submitToken: "t", signalMarginSeconds: 60)
        }
        #expect(throws: JobScriptError.self) {
            try SbatchDirectives.make(queue: "q", profile: BatchProfile(), stdoutPath: "/var/log/with space/o", stderrPath: "/e",
                                      submitToken: "t", signalMarginSeconds: 60)
        }
    }

    /// `extra` cannot set what the renderer sets: sbatch takes the last of two lines, so a second
    /// --comment would replace the submit token, and abbreviations count as the option.
    @Test func extraCannotReplaceTheOptionsTheRendererOwns() throws {
        for owned in ["--comment=mine", "--comm=mine", "--output=/tmp/elsewhere", "--job-name=x", "--signal=B:USR1@1",
                      "--time=1", "--no-requeue", "--clusters=other", "--cluster=other", "--mem=1"] {
            let error = #expect(throws: JobScriptError.self, "\(owned)") {
                try SbatchDirectives.make(queue: "q", profile: BatchProfile(extra: [owned]), stdoutPath: "/o", stderrPath: "/e",
                                          submitToken: "t", signalMarginSeconds: 60)
            }
            #expect(error?.description.contains("which ccat writes itself") == true, "\(owned): \(error?.description ?? "")")
        }
        #expect(throws: JobScriptError.self) {
            try SbatchDirectives.make(queue: "q", profile: BatchProfile(extra: ["--wrap=id"]), stdoutPath: "/o", stderrPath: "/e",
                                      submitToken: "t", signalMarginSeconds: 60)
        }
        let directives = try SbatchDirectives.make(queue: "q", profile: BatchProfile(extra: ["--gres=gpu:1", "--exclusive", "--mail-type=FAIL"]),
                                                   stdoutPath: "/o", stderrPath: "/e", submitToken: "t", signalMarginSeconds: 60)
        #expect(directives.lines.components(separatedBy: "--comment=").count == 2)
        #expect(directives.lines.contains("#SBATCH --gres=gpu:1\n#SBATCH --exclusive\n#SBATCH --mail-type=FAIL"))
    }

    @Test func overrideDirectoryReplacesTemplatesByName() throws {
        let overrides = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-overrides-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: overrides, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: overrides) }
        try "module load ccat/{{queue}}\nhost={{site}}-{{location}}\n".write(to: overrides.appendingPathComponent("setup.mustache"), atomically: true, encoding: .utf8)
        try "#!/bin/bash\n{{{sbatch_directives}}}\nexec {{runner}} stage --batch-job {{batch_job_id}}\n"
            .write(to: overrides.appendingPathComponent("staging.sh.mustache"), atomically: true, encoding: .utf8)
        let renderer = try JobScriptRenderer(builtinDirectory: Self.builtin, overrideDirectory: overrides.path)
        let transfer = try renderer.render(try context())
        #expect(transfer.contains("module load ccat/'cologne_buffer_data_transfer'\n"))
        var atSite = try context()
        atSite.site = "cologne"
        atSite.location = "buffer"
        #expect(try renderer.render(atSite).contains("\nhost='cologne'-'buffer'\n"))
        var staging = try context()
        staging.operation = .staging
        #expect(renderer.templateName(for: .staging) == "staging.sh")
        #expect(try renderer.render(staging).hasSuffix("exec '/opt/ccat/bin/ccat-runner' stage --batch-job '42'\n"))
    }
}

@Suite("Rendered scripts on the Slurm test cluster", .enabled(if: TestEnvironment.runSlurmTests, "requires the Slurm test cluster: run 'make test' as root with Slurm installed"))
struct SlurmScriptTests {
    @Test func renderedScriptsPassSbatchTestOnly() throws {
        let environment = try TestEnvironment.slurmEnvironment()
        let renderer = try JobScriptRenderer(builtinDirectory: JobScriptTests.builtin)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ccat-testonly-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        // Every operation's script, with a profile the test cluster accepts and hostile environment values.
        for operation in OperationType.allCases {
            let profile = BatchProfile(partition: "debug", timeLimitMinutes: 5, cpus: 1, memoryMB: 100, extra: ["--gres=none"])
            let directives = try SbatchDirectives.make(queue: "ccat_buffer_\(operation.queueSuffix)", profile: profile,
                                                       stdoutPath: "\(work.path)/out.log", stderrPath: "\(work.path)/err.log",
                                                       submitToken: UUID().uuidString, signalMarginSeconds: 60)
            let script = try renderer.render(JobScriptContext(
                batchJobID: 7, queue: "ccat_buffer_\(operation.queueSuffix)", operation: operation, scheduler: .slurm, directives: directives,
                runnerPath: "/usr/local/bin/ccat-runner", environment: JobScriptTests.hostile.enumerated().map { ("V\($0.offset)", $0.element) }))
            let path = work.appendingPathComponent("\(operation.queueSuffix).sh").path
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try runProcess("/bin/bash", ["-n", path]).status == 0)
            let check = try runProcess("/usr/bin/env", ["sbatch", "--test-only", path], environment: environment)
            #expect(check.status == 0, "sbatch --test-only rejected the \(operation.rawValue) script: \(check.stderr)")
            #expect(check.stderr.contains("to start at"), "\(check.stderr)")
        }
    }
}
