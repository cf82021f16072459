import Foundation
import OpsDB
import Testing
import TestSupport
import Topology
@testable import Scheduling

@Suite("ccat jobs list, show and cancel")
struct JobsCommandTests {
    @Test(arguments: SchedulerUnderTest.available)
    func listShowCancel(_ kind: SchedulerUnderTest) async throws {
        try await DispatchFixture.with(kind, behaviour: "sleep") { fixture in
            try await fixture.addOperations(2)
            _ = try await fixture.dispatcher.dispatch(fixture.queue)
            let job = try #require(try await fixture.jobs().first)
            // The command finds the local scheduler's state where the fixture keeps it.
            var environment = ["CCAT_DATABASE_URL": fixture.database.conninfo, "CCAT_STATE_DIRECTORY": fixture.work.path]
            if kind == .slurm { environment["SLURM_CONF"] = TestEnvironment.slurmConf }

            let list = try await runExecutable("ccat", ["jobs", "list", "--json"], environment: environment)
            #expect(list.status == 0, "\(list.stderr)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(rows.count == 1)
            #expect(rows.first?["operations"] as? Int == 2)
            #expect((rows.first?["job"] as? [String: Any])?["queue"] as? String == fixture.queue.name)

            let filtered = try await runExecutable("ccat", ["jobs", "list", "--state", "completed"], environment: environment)
            #expect(filtered.stdout.hasPrefix("no batch jobs"))
            let badState = try await runExecutable("ccat", ["jobs", "list", "--state", "DONE"], environment: environment)
            #expect(badState.status != 0)
            #expect(badState.stderr.contains("unknown job state 'DONE'"))

            let show = try await runExecutable("ccat", ["jobs", "show", String(job.id)], environment: environment)
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains("script:     \(job.scriptPath)"))
            #expect(show.stdout.contains("PREPARED"))
            #expect(show.stdout.contains("SUBMITTING"))

            let cancel = try await runExecutable("ccat", ["jobs", "cancel", String(job.id)], environment: environment)
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.stdout.contains("cancel requested for batch job \(job.id)"))
            let ended = try await fixture.track(job.id) { $0.state.isTerminal }
            #expect(ended.state == .cancelled)
            #expect(try await fixture.operations().map(\.state) == [.pending, .pending])

            let again = try await runExecutable("ccat", ["jobs", "cancel", String(job.id)], environment: environment)
            #expect(again.status != 0)
            #expect(again.stderr.contains("has already ended (CANCELLED)"))
            let missing = try await runExecutable("ccat", ["jobs", "show", "999999"], environment: environment)
            #expect(missing.stderr.contains("no batch job 999999"))
        }
    }
}
