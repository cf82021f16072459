import Foundation
import OpsDB
import Processes
import Testing
@testable import Scheduling

@Suite("Slurm output parsing and job-end mapping (pure logic)")
struct SlurmParsingTests {
    @Test func sbatchIDsAreParsedStrictly() throws {
        #expect(try SlurmParsing.parseSbatch("4242\n") == ("4242", nil))
        #expect(try SlurmParsing.parseSbatch("17;cologne\n") == ("17", "cologne"))
        for bad in ["", "Submitted batch job 12", "sbatch: error: Batch job submission failed", "12;", "12 13", "x;y"] {
            let error = #expect(throws: SlurmOutputError.self) { try SlurmParsing.parseSbatch(bad) }
            #expect(error?.description.contains(bad.debugDescription) == true, "the full output must be in the error")
        }
    }

    @Test func everyTerminalStateIsMappedExplicitly() {
        let expected: [String: BatchJobState] = [
            "COMPLETED": .completed, "FAILED": .failed, "CANCELLED by 0": .cancelled, "CANCELLED+": .cancelled,
            "TIMEOUT": .timeout, "NODE_FAIL": .nodeFail, "OUT_OF_MEMORY": .outOfMemory, "PREEMPTED": .preempted,
            "BOOT_FAIL": .bootFail, "DEADLINE": .deadline, "PENDING": .pending, "RUNNING": .running,
            "COMPLETING": .completing, "REQUEUED": .requeued, "SUSPENDED": .suspended, "CONFIGURING": .pending,
        ]
        for (text, state) in expected { #expect(SlurmParsing.state(text) == state, "\(text)") }
        #expect(SlurmParsing.state("SOMETHING_NEW") == nil)
        // Every terminal state has a disposition; infrastructure failures do not count as attempts.
        for state in BatchJobState.allCases where state.isTerminal {
            #expect(JobEndDisposition.forJob(ending: state, exitCode: 1, signal: 0) != nil, "\(state)")
        }
        #expect(JobEndDisposition.forJob(ending: .running, exitCode: nil, signal: nil) == nil)
        #expect(JobEndDisposition.forJob(ending: .preempted, exitCode: 0, signal: 0)?.countsAsAttempt == false)
        #expect(JobEndDisposition.forJob(ending: .nodeFail, exitCode: 0, signal: 0)?.countsAsAttempt == false)
        #expect(JobEndDisposition.forJob(ending: .failed, exitCode: 3, signal: 0)?.reason.contains("exit code 3") == true)
    }

    @Test func squeueAndSacctLines() throws {
        let queue = try SlurmParsing.parseSqueue("""
            101|RUNNING|vm|None|ccat-submit-token=aaaa
            102|PENDING||Resources|ccat-submit-token=bbbb
            103|PENDING||Priority|(null)
            """)
        #expect(queue.map(\.jobID) == ["101", "102", "103"])
        #expect(queue.map(\.state) == [.running, .pending, .pending])
        #expect(queue[0].node == "vm" && queue[0].reason == nil && queue[0].submitToken == "aaaa")
        #expect(queue[1].reason == "Resources" && queue[2].submitToken == nil)
        let accounting = try SlurmParsing.parseSacct("""
            101|COMPLETED|0:0|vm|ccat-submit-token=aaaa
            102|FAILED|3:0|vm|
            104|CANCELLED by 0|0:15|None assigned|ccat-submit-token=cccc
            """)
        #expect(accounting.map(\.state) == [.completed, .failed, .cancelled])
        #expect(accounting[1].exitCode == 3)
        #expect(accounting[2].signal == 15 && accounting[2].node == nil && accounting[2].submitToken == "cccc")
        #expect(throws: SlurmOutputError.self) { try SlurmParsing.parseSacct("101|COMPLETED") }
        #expect(throws: SlurmOutputError.self) { try SlurmParsing.parseSqueue("101|WEIRD_STATE|vm|None|") }
    }
}

/// Replays recorded `sacct` answers in order (the last one repeats), and counts the calls.
final class RecordedSacct: CommandRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [String]
    private(set) var calls: [[String]] = []
    init(_ answers: [String]) { self.answers = answers }
    func run(_ executable: String, _ arguments: [String], environment: [String: String]?, timeout: Duration) async throws -> CommandResult {
        lock.withLock {
            calls.append([executable] + arguments)
            let answer = answers.count > 1 ? answers.removeFirst() : answers[0]
            return CommandResult(exitStatus: 0, signal: nil, stdout: answer, stderr: "")
        }
    }
}

@Suite("Slurm accounting records not yet complete (pure logic)")
struct UnsettledSacctTests {
    /// slurmdbd on a loaded node showed a job that failed within a second as FAILED 0:0 before its
    /// exit code 3 arrived: the status is asked again before it is taken.
    @Test func aFailureWithoutExitCodeIsAskedAgain() async throws {
        let sacct = RecordedSacct(["51|FAILED|0:0|vm|ccat-submit-token=t\n52|COMPLETED|0:0|vm|\n", "51|FAILED|3:0|vm|ccat-submit-token=t\n"])
        let slurm = SlurmScheduler(runner: sacct)
        let statuses = try await slurm.statuses(of: [SubmittedJob(jobID: "51", cluster: nil), SubmittedJob(jobID: "52", cluster: nil)])
        #expect(statuses["51"]?.exitCode == 3)
        #expect(statuses["52"]?.state == .completed)
        #expect(sacct.calls.count == 2)
        #expect(sacct.calls.last?.contains("51") == true && sacct.calls.last?.contains("51,52") == false)
    }

    /// A record that stays so is taken after two more questions: the tracker is never held up.
    @Test func aLastingFailureWithoutExitCodeIsTakenAsItIs() async throws {
        let sacct = RecordedSacct(["7|FAILED|0:0|vm|\n"])
        let statuses = try await SlurmScheduler(runner: sacct).statuses(of: [SubmittedJob(jobID: "7", cluster: nil)])
        #expect(statuses["7"]?.state == .failed)
        #expect(sacct.calls.count == 3)
    }
}

/// What the daemon reads from `scontrol` before it stages for a job on behalf of its owner.
@Suite("scontrol: a job's owner and burst-buffer directives, and the Slurm user")
struct ScontrolParsingTests {
    // As Slurm 22.05 prints a held job with a directive (trimmed to the lines that matter).
    static let job = """
        JobId=326 JobName=good.sh
           UserId=ccat_sci_a(1001) GroupId=users(100) MCS_label=N/A
           Priority=0 Nice=0 Account=ccat QOS=normal
           JobState=PENDING Reason=JobHeldUser Dependency=(null)
           Comment=x BurstBuffer=#BB_LUA ccat stage obs=forged location=x
           BurstBuffer=#BB_LUA ccat stage obs=obs-2026-01,obs-2026-02 location=ramses_processing keep
           BurstBufferState=pending
           Power=

        """

    @Test func ownerStateAndDirectivesAreRead() throws {
        let info = try #require(ScontrolJobLookup.parseJob(Self.job))
        #expect(info.jobID == 326 && info.userName == "ccat_sci_a" && info.uid == 1001 && info.gid == 100 && info.state == "PENDING")
        #expect(info.burstBuffer == "#BB_LUA ccat stage obs=obs-2026-01,obs-2026-02 location=ramses_processing keep")
        #expect(info.carriesStagingDirective)
    }

    @Test func aCommentIsNotADirective() throws {
        // Users write comments; only Slurm writes BurstBuffer=.
        let withoutDirective = Self.job.replacingOccurrences(of: "   BurstBuffer=#BB_LUA ccat stage obs=obs-2026-01,obs-2026-02 location=ramses_processing keep\n", with: "")
        let info = try #require(ScontrolJobLookup.parseJob(withoutDirective))
        #expect(info.burstBuffer == nil && !info.carriesStagingDirective, "\(String(describing: info.burstBuffer))")
        let otherDirective = Self.job.replacingOccurrences(of: "BurstBuffer=#BB_LUA ccat stage", with: "BurstBuffer=#BB_LUA other stage")
        #expect(try #require(ScontrolJobLookup.parseJob(otherDirective)).carriesStagingDirective == false)
        #expect(ScontrolJobLookup.parseJob("slurm_load_jobs error: Invalid job id specified") == nil)
    }

    @Test func theOwnerComesFromNumericFieldsNotFromTextTheOwnerWrites() throws {
        // A job name is printed before UserId= and GroupId=, and its owner chooses it.
        let named = Self.job.replacingOccurrences(of: "JobName=good.sh", with: "JobName=x GroupId=wheel(10)")
        #expect(ScontrolJobLookup.parseJob(named)?.gid == 10, "scontrol's text alone can be fooled; squeue's numbers decide")
        let owner = try #require(ScontrolJobLookup.parseOwner("326|1001|100\n", job: 326))
        #expect(owner.uid == 1001 && owner.gid == 100)
        #expect(ScontrolJobLookup.parseOwner("327|0|0\n", job: 326) == nil)
        #expect(ScontrolJobLookup.parseOwner("326|root|0\n", job: 326) == nil)
        // Blanks between the words of a directive may be tabs, as Slurm and the Lua script read them.
        let tabs = Self.job.replacingOccurrences(of: "BurstBuffer=#BB_LUA ccat stage", with: "BurstBuffer=#BB_LUA\tccat  stage")
        #expect(try #require(ScontrolJobLookup.parseJob(tabs)).carriesStagingDirective)
    }

    @Test func theSlurmUserIsReadFromTheConfiguration() {
        let config = "Configuration data as of 2026-12-03T04:03:17\nSlurmctldPort           = 6817\nSlurmUser               = slurm(64030)\nSlurmdUser              = root(0)\n"
        let user = ScontrolJobLookup.parseSlurmUser(config)
        #expect(user?.name == "slurm" && user?.uid == 64030)
        #expect(ScontrolJobLookup.parseSlurmUser("SlurmdUser = root(0)") == nil)
    }
}
