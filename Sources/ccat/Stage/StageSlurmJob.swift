import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

/// What the burst-buffer script (`etc/slurm/burst_buffer.lua`) runs as the Slurm user for a job's
/// `#BB_LUA ccat stage` directive, besides `ccat stage request --slurm-job`: waiting for the data
/// (stage-in) and ending the request when the job ends (teardown).
struct StageSlurmJob: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm-job",
        abstract: "Wait for, or end, the staging request of a Slurm job (used by the burst-buffer script).",
        subcommands: [StageSlurmJobWait.self, StageSlurmJobEnd.self])
}

struct StageSlurmJobWait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until the job's request is READY and print the job's environment; exit 1 with the reason if it fails.",
        discussion: """
            Prints CCAT_STAGED_DIR=<directory> and CCAT_STAGING_REQUEST=<id>, one per line, the format \
            of the burst-buffer script's path file.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The Slurm job id.", valueName: "id"))
    var job: Int64

    @Option(name: .long, help: ArgumentHelp("Give up after this many seconds (exit 2; the request goes on).", valueName: "seconds"))
    var timeout: Double?

    func run() async throws {
        let request = try await withStagingDatabase(options, "slurm-job wait") { db in try await db.latestStagingRequest(slurmJobID: job) }
        guard let request else { throw CommandError("no staging request for Slurm job \(job)") }
        let final = try await StageRequest.waitFor(request.id, options: options, timeout: timeout)
        switch final.status {
        case .ready:
            guard let directory = final.directory else {
                throw CommandError("staging request \(request.id) is READY but its location has no directory to name")
            }
            print("CCAT_STAGED_DIR=\(directory)\nCCAT_STAGING_REQUEST=\(request.id)")
        case .submitted, .accepted, .staging:
            printError("staging request \(request.id) for Slurm job \(job) is still \(final.status.rawValue)")
            throw ExitCode(2)
        default:
            throw CommandError("staging request \(request.id) for Slurm job \(job) is \(final.status.rawValue): \(final.reason ?? "no reason recorded")")
        }
    }
}

struct StageSlurmJobEnd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "end",
        abstract: "The job ended: release its staged data (cancel the request if it is not ready), unless its directive said 'keep'.",
        discussion: "Safe to run again, and for a job that has no request: it then says so and exits 0.")

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The Slurm job id.", valueName: "id"))
    var job: Int64

    func run() async throws {
        let outcome = try await withStagingDatabase(options, "slurm-job end") { db -> String in
            let open = try await db.openStagingRequests(slurmJobID: job)
            guard !open.isEmpty else { return "no open staging request for Slurm job \(job)" }
            var said: [String] = []
            for request in open {
                if request.keepAfterJob {
                    said.append("staging request \(request.id) is kept ('keep' in the directive): release it with 'ccat stage release \(request.id)'")
                } else if [.submitted, .accepted, .staging].contains(request.status) {
                    _ = try await db.endStagingRequest(request.id, as: .cancelled)
                    said.append("staging request \(request.id) cancelled")
                } else {
                    _ = try await db.endStagingRequest(request.id, as: .released)
                    said.append("staging request \(request.id) released")
                }
            }
            return said.joined(separator: "\n")
        }
        print(outcome)
    }
}
