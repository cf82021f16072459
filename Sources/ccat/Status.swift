import ArgumentParser
import CCatCLI
import Foundation
import OpsDB

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The pipeline at a glance: files, packages, transfers, archive copies, queues, services, failures.",
        discussion: "--json prints the same as one object; --watch redraws every N seconds until interrupted."
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Refresh every this many seconds.", valueName: "seconds"))
    var watch: Double?

    func validate() throws {
        if let watch, watch <= 0 { throw ValidationError("--watch needs a positive number of seconds") }
    }

    static func bytes(_ count: Int64) -> String { formatByteCount(count) }

    static func renderLinks(_ links: [LinkThroughput]) -> String {
        guard !links.isEmpty else { return "" }
        var table = TextTable(["LINK (24 H)", "WORK", "ATTEMPTS", "FAILED", "BYTES", "RATE"])
        for link in links {
            table.append(["\(link.origin ?? "?") -> \(link.destination)", link.operationType.rawValue, String(link.attempts), String(link.failures),
                          bytes(link.bytes), link.bytesPerSecond.map { "\(bytes(Int64($0)))/s" } ?? "-"])
        }
        return "\n" + table.render()
    }

    static func renderLinkConcurrency(_ links: [LinkConcurrency]) -> String {
        guard !links.isEmpty else { return "" }
        var table = TextTable(["LINK", "JOBS", "LIMIT", "BOUNDS", "CAP NOW", "THROUGHPUT (AVG)", "SUCCESS", "LAST DECISION"])
        for link in links {
            table.append(["\(link.origin) -> \(link.destination)", "\(link.activeJobs) (+\(link.waitingOperations) waiting)", String(link.activeLimit),
                          "\(link.minActive)-\(link.maxActive)\(link.configured ? "" : " (default)")",
                          link.rateCapBitsPerSecond.map(LinkWindow.rateText) ?? "-",
                          link.emaBytesPerSecond.map { "\(bytes(Int64($0)))/s" } ?? "-", link.successRate.map { String(format: "%.0f%%", $0 * 100) } ?? "-",
                          "\(formatTimestamp(link.decidedAt)) \(link.reason)"])
        }
        return "\n" + table.render()
    }

    static func renderIntegrity(_ archives: [ArchiveIntegrity]) -> String {
        guard !archives.isEmpty else { return "" }
        var table = TextTable(["ARCHIVE", "OLDEST VERIFICATION", "FIXITY (24 H)", "LAST AUDIT", "DAMAGED", "SUSPECT RUNS"])
        for archive in archives {
            table.append([archive.location, archive.oldestVerificationDays.map { String(format: "%.1f days ago", $0) } ?? "-",
                          bytes(archive.fixityBytesLastDay),
                          archive.lastAuditAt.map { "\(formatTimestamp($0)) \(archive.lastAuditState?.rawValue ?? "")" } ?? "never",
                          archive.damagedCopies == 0 ? "0" : "\(archive.damagedCopies) (being repaired)",
                          archive.suspectRuns.isEmpty ? "-" : archive.suspectRuns.map(String.init).joined(separator: ", ")])
        }
        var out = "\n" + table.render()
        if archives.contains(where: { !$0.suspectRuns.isEmpty }) {
            out += "SUSPECT: a fixity pass or audit found too much missing at once and changed nothing; look at the storage, then 'ccat audit show ID' and 'ccat audit confirm ID'\n"
        }
        return out
    }

    static func render(_ status: PipelineStatus) -> String {
        var out = "files: \(status.files) (\(bytes(status.fileBytes)))   packages archived at every archive site: \(status.packagesArchivedEverywhere) of \(status.packages)\n\n"
        var stages = TextTable(["STAGE", "STATUS", "COUNT", "BYTES"])
        for stage in status.stages { stages.append([stage.stage, stage.status, String(stage.count), bytes(stage.bytes)]) }
        out += status.stages.isEmpty ? "no packages yet\n" : stages.render()
        var copies = TextTable(["LOCATION", "TYPE", "KIND", "PRESENT", "DELETED", "BYTES", "DISK USED", "REACHABLE"])
        for copy in status.copies {
            copies.append([copy.location, copy.locationType, copy.kind, String(copy.present), String(copy.deleted), bytes(copy.bytesPresent),
                           copy.usedPercent.map { String(format: "%.0f%%", $0) } ?? "-", copy.reachable.map { $0 ? "yes" : "NO" } ?? "-"])
        }
        if !status.copies.isEmpty { out += "\n" + copies.render() }
        out += renderIntegrity(status.integrity)
        out += renderLinks(status.links)
        out += renderLinkConcurrency(status.linkConcurrency)
        var queues = TextTable(["QUEUE", "STATE", "OPERATIONS"])
        for row in status.operations { queues.append([row.queue, row.state, String(row.count)]) }
        out += "\n" + (status.operations.isEmpty ? "no unfinished operations\n" : queues.render())
        var services = TextTable(["SERVICE", "INSTANCE", "STATUS", "LEADER", "HEARTBEAT"])
        for service in status.services {
            let leader = service.status == "STOPPED" || service.stale ? "-" : service.leader ? "yes" : "standby"
            services.append([service.service, service.instance, service.stale ? "STALE" : service.status, leader,
                             String(format: "%.0f s ago", service.secondsSinceHeartbeat)])
        }
        out += "\n" + (status.services.isEmpty ? "no daemon has run (start one with 'ccat daemon')\n" : services.render())
        if status.services.contains(where: \.stale) {
            out += "STALE: no heartbeat for several intervals although never stopped: the daemon was killed or hangs (its leader locks ended with its sessions; a running daemon takes over)\n"
        }
        if !status.setAside.isEmpty {
            out += "\nset aside by the managers (tried again \(OpsDB.setAsideSeconds / 60) minutes after each failure; the rest goes on):\n"
            for issue in status.setAside {
                out += "  \(issue.manager): \(TextTable.oneLine(issue.item)): failed \(issue.failures) time\(issue.failures == 1 ? "" : "s"), last \(formatTimestamp(issue.lastSeenAt)): \(TextTable.oneLine(issue.error))\n"
            }
        }
        // Operations in intervention are listed below with their errors.
        let alerts = status.alerts.filter { $0.kind != AlertKind.intervention.rawValue }
        if !alerts.isEmpty {
            out += "\nalerts (raised by the daemon's alert manager; they clear on their own once the condition ends):\n"
            for alert in alerts {
                out += "  since \(formatTimestamp(alert.raisedAt)): \(TextTable.oneLine(alert.summary))\n"
                if let fix = alert.fix { out += "    fix: \(fix)\n" }
            }
        }
        if !status.attention.isEmpty {
            out += "\nneeds attention ('ccat jobs show' / the operation's log says more):\n"
            for item in status.attention {
                out += "  operation \(item.operationID) \(item.type) \(item.state) after \(item.attempts) attempts: \(item.errorClass ?? "-"): \(item.lastError ?? "")\n"
            }
        }
        return out
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.status")
        try await options.withOpsDatabase("ccat status", logger: logger) { db in
            repeat {
                let status = try await db.pipelineStatus()
                if options.json {
                    try printJSON(status)
                } else {
                    if watch != nil, isatty(STDOUT_FILENO) != 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                    print(Self.render(status), terminator: "")
                }
                if let watch { try await Task.sleep(for: .milliseconds(Int(watch * 1000))) }
            } while watch != nil
        }
    }
}
