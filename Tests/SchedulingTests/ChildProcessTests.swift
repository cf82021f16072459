import Foundation
import Processes
import Testing
import TestSupport
@testable import Scheduling

@Suite("Child processes: spawn, wait, signal")
struct ChildProcessTests {
    @Test func exitStatusSignalsAndWorkingDirectory() throws {
        #expect(try ChildProcess.spawn("/bin/sh", ["-c", "exit 3"]).wait() == 3)
        let sleeper = try ChildProcess.spawn("/bin/sleep", ["30"])
        #expect(sleeper.isRunning)
        sleeper.signal(SIGKILL)
        #expect(try sleeper.wait() == 128 + SIGKILL)
        // Reaped once; asking again gives the same answer and signals nobody.
        #expect(try sleeper.poll() == 128 + SIGKILL)
        sleeper.signal(SIGKILL)

        let result = try runProcess("/bin/sh", ["-c", "pwd; echo oops >&2; exit 5"], currentDirectory: "/usr")
        #expect(result.status == 5 && result.stdout == "/usr\n" && result.stderr == "oops\n")
    }

    @Test func onlyTheStandardStreamsReachTheChild() throws {
        // A descriptor without close-on-exec, which only the spawn's own closing keeps from the child.
        var inherited: [Int32] = [0, 0]
        #expect(pipe(&inherited) == 0)
        defer { close(inherited[0]); close(inherited[1]) }
        // The listing's own directory descriptor is the one extra entry.
        let result = try runProcess("/bin/sh", ["-c", "ls /proc/self/fd | wc -l"])
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "4", "\(result.stdout)")
    }

    @Test func theChildStartsWithNoSignalBlockedAndOnlySIGHUPIgnored() throws {
        // Block SIGTERM and SIGUSR2 in this thread, as dispatch's threads do; ignore SIGPIPE (the
        // Swift runtime), SIGUSR2 (the runner's stop routing; SIGTERM is left alone so that a
        // stop of the test process still works) and SIGHUP (nohup); then spawn.
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        sigaddset(&blocked, SIGUSR2)
        #expect(pthread_sigmask(SIG_BLOCK, &blocked, &previous) == 0)
        let ignored = [SIGPIPE, SIGUSR2, SIGHUP]
        let oldActions = ignored.map { signal($0, SIG_IGN) }
        let status = Result { try runProcess("/bin/grep", ["-E", "^Sig(Blk|Ign):", "/proc/self/status"]) }
        let sleeper = Result { try ChildProcess.spawn("/bin/sleep", ["30"]) }
        for (number, action) in zip(ignored, oldActions) { signal(number, action) }
        pthread_sigmask(SIG_SETMASK, &previous, nil)

        // No standard signal (1-31) blocked, and SIGHUP the only one ignored. (glibc ignores its
        // internal signals 32 and 33 in every child.)
        let lines = try status.get().stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        let masks = Dictionary(uniqueKeysWithValues: lines.compactMap { $0.count == 2 ? ($0[0], UInt64($0[1], radix: 16) ?? .max) : nil })
        #expect(masks["SigBlk:"].map { $0 & 0x7fff_ffff == 0 } == true, "\(lines)")
        #expect(masks["SigIgn:"].map { $0 & 0x7fff_ffff } == 1 << (UInt64(SIGHUP) - 1), "\(lines)")
        // And so a SIGTERM ends it.
        let child = try sleeper.get()
        child.signal(SIGTERM)
        #expect(try child.wait() == 128 + SIGTERM)
    }

    @Test func missingProgramIsNotFound() throws {
        let error = #expect(throws: CommandRunError.self) { try ChildProcess.spawn("/nonexistent/ccat-tool", []) }
        #expect(error?.kind == .notFound)
        let badDirectory = #expect(throws: CommandRunError.self) { try ChildProcess.spawn("/bin/true", [], directory: "/nonexistent") }
        #expect(badDirectory?.description.contains("/nonexistent") == true)
    }
}
