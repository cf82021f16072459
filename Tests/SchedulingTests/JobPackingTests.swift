import Foundation
import Testing
@testable import Scheduling

@Suite("Packing operations into jobs, and reading #SBATCH lines for the local scheduler")
struct JobPackingTests {
    @Test func countLimitBinds() {
        let packing = JobPacking(maxOperations: 100, maxBytes: 1 << 40, walltimeSeconds: nil)
        #expect(packing.count(sizes: Array(repeating: 10, count: 250)) == 100)
        #expect(packing.count(sizes: Array(repeating: 10, count: 7)) == 7)
        #expect(packing.count(sizes: []) == 0)
    }

    @Test func bytesLimitBindsButTheFirstOperationAlwaysFits() {
        let packing = JobPacking(maxOperations: 100, maxBytes: 1000, walltimeSeconds: nil)
        #expect(packing.count(sizes: [400, 400, 400, 1]) == 2)
        #expect(packing.count(sizes: [5000, 1]) == 1)
    }

    @Test func walltimeLimitBinds() {
        // 10 minutes, half of it usable: 300 s; each operation costs 2 s + size / 100 MB/s.
        let packing = JobPacking(maxOperations: 1000, maxBytes: 1 << 50, walltimeSeconds: 600, secondsPerOperation: 2,
                                 bytesPerSecond: 100_000_000, walltimeFill: 0.5)
        #expect(packing.count(sizes: Array(repeating: 0, count: 500)) == 150)
        // 10 GB each: 102 s per operation, two fit in 300 s.
        #expect(packing.count(sizes: Array(repeating: 10_000_000_000, count: 5)) == 2)
    }

    @Test func slurmTimeFormats() {
        #expect(SbatchScriptOptions.parseTime("5") == 300)
        #expect(SbatchScriptOptions.parseTime("5:30") == 330)
        #expect(SbatchScriptOptions.parseTime("1:00:00") == 3600)
        #expect(SbatchScriptOptions.parseTime("2-0") == 172_800)
        #expect(SbatchScriptOptions.parseTime("1-2:03") == 93_780)
        #expect(SbatchScriptOptions.parseTime("1-00:00:01") == 86_401)
        #expect(SbatchScriptOptions.parseTime("UNLIMITED") == Int.max)
        #expect(SbatchScriptOptions.parseTime("1:2:3:4") == nil)
        #expect(SbatchScriptOptions.parseTime("soon") == nil)
        #expect(SbatchScriptOptions.parseTime("-5") == nil)
    }

    @Test func directivesStopAtTheFirstCommand() throws {
        let script = """
            #!/bin/bash
            #SBATCH --job-name=q1
            # a comment between directives
            #SBATCH -o /logs/%x-%j.out
            #SBATCH --time 0:10:00
            #SBATCH --signal=B:USR2@90
            #SBATCH --comment=ccat-submit-token=abc

            echo hello
            #SBATCH --job-name=ignored
            """
        let options = try SbatchScriptOptions.parse(script: script)
        #expect(options.jobName == "q1")
        #expect(options.output == "/logs/%x-%j.out")
        #expect(options.timeLimitSeconds == 600)
        #expect(options.warningSignal == SIGUSR2)
        #expect(options.warningSeconds == 90)
        #expect(options.comment == "ccat-submit-token=abc")
        #expect(SbatchScriptOptions.expand(options.output ?? "", jobID: "7", jobName: "q1") == "/logs/q1-7.out")
        #expect(SbatchScriptOptions.expand("100%%-%u", jobID: "7", jobName: "q1") == "100%-%u")
        #expect(throws: JobScriptError.self) { try SbatchScriptOptions.parse(script: "#!/bin/bash\n#SBATCH --time=later\n") }
        #expect(throws: JobScriptError.self) { try SbatchScriptOptions.parse(script: "#!/bin/bash\n#SBATCH --signal=B:NOPE@5\n") }
    }
}
