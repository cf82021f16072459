import Foundation
import Managers
import OpsDB

/// The status page: plain server-rendered HTML that reloads itself, no script. Every element a
/// test or a person looks for carries a `data-` attribute naming what it shows.
struct StatusPage {
    var snapshot: MonitoringSnapshot
    var hours: [LinkHour]
    var requests: [StagingRequestSummary]
    var leadership: [String: Bool]
    var refreshSeconds: Int
    var generatedAt: Date

    /// The stages in the order data flows, with what each is called on the page.
    static let flow: [(stage: String, title: String)] = [
        ("raw_data_file", "files waiting for a package"), ("raw_data_package", "raw data packages"),
        ("data_transfer_package", "transfer bundles"), ("data_transfer", "transfers between sites"), ("unpacking", "unpacking"),
        ("long_term_archive_transfer", "archiving"), ("staging_job", "staging for scientists"),
    ]

    func render() -> String {
        var html = Self.head(title: "ccat status", refreshSeconds: refreshSeconds)
        let status = snapshot.status
        html += "<header><h1>ccat data transfer</h1><p>as of <time data-generated>\(esc(Self.timestamp(generatedAt)))</time>"
        html += " &middot; this daemon: \(esc(role)) &middot; reloads every \(refreshSeconds) s &middot; read-only"
        html += " &middot; <a href=\"/api/v1/status\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></p></header>\n"
        html += attention()
        html += "<section id=\"pipeline\"><h2>Pipeline</h2><p data-summary>\(status.files) files (\(esc(formatByteCount(status.fileBytes)))); "
        html += "<span data-archived-everywhere=\"\(status.packagesArchivedEverywhere)\">\(status.packagesArchivedEverywhere)</span> of "
        html += "\(status.packages) packages archived at every archive site</p>\n<ol class=\"flow\">"
        for (stage, title) in Self.flow {
            let rows = status.stages.filter { $0.stage == stage }
            let waiting = snapshot.figures.oldestPending.first { $0.stage == stage }
            html += "<li class=\"stage\" data-stage=\"\(stage)\"><h3>\(esc(title))</h3>"
            if stage == "raw_data_file" {
                html += "<p><b data-count=\"WAITING\">\(waiting?.count ?? 0)</b> waiting</p>"
            } else if rows.isEmpty {
                html += "<p class=\"quiet\">none</p>"
            } else {
                html += "<ul>" + rows.map { "<li><b data-count=\"\(esc($0.status))\">\($0.count)</b> \(esc($0.status.lowercased())) <small>\(esc(formatByteCount($0.bytes)))</small></li>" }.joined() + "</ul>"
            }
            if let waiting, waiting.count > 0 {
                html += "<p class=\"quiet\">oldest unfinished: \(esc(Self.age(waiting.oldestSeconds)))</p>"
            }
            html += "</li>"
        }
        html += "</ol></section>\n"
        html += links()
        html += locations()
        html += queues()
        html += services()
        html += staging()
        html += integrity()
        html += "</body></html>\n"
        return html
    }

    var role: String {
        leadership.isEmpty ? "starting" : leadership.values.contains(true) ? "leader of \(leadership.filter(\.value).count) of \(leadership.count) services" : "standby"
    }

    func attention() -> String {
        let status = snapshot.status
        var items: [String] = []
        for item in status.attention {
            items.append("""
                <li data-attention-operation="\(item.operationID)"><b>operation \(item.operationID)</b> \(esc(item.type)) is \(esc(item.state)) after \
                \(item.attempts) attempts: \(esc(item.errorClass ?? "-")): \(esc(item.lastError ?? ""))<br>fix: \
                <code data-fix>ccat ops show \(item.operationID)</code>, then <code>ccat ops retry \(item.operationID)</code></li>
                """)
        }
        for alert in snapshot.status.alerts where alert.kind != AlertKind.intervention.rawValue {
            items.append("<li data-alert=\"\(esc(alert.conditionKey))\">\(esc(alert.summary))"
                         + (alert.fix.map { "<br>fix: <code data-fix>\(esc($0))</code>" } ?? "") + "</li>")
        }
        for service in status.services where service.stale && !snapshot.status.alerts.contains(where: { $0.conditionKey == "heartbeat:\(service.service)@\(service.instance)" }) {
            items.append("<li data-stale-service=\"\(esc(service.service))\">service \(esc(service.service)) of \(esc(service.instance)) has been silent for \(esc(Self.age(service.secondsSinceHeartbeat)))<br>fix: start the daemon on that host again</li>")
        }
        for issue in status.setAside {
            items.append("<li data-set-aside>\(esc(issue.manager)): \(esc(issue.item)) failed \(issue.failures) times: \(esc(issue.error))</li>")
        }
        guard !items.isEmpty else { return "<section id=\"attention\" class=\"ok\"><h2>Needs attention</h2><p>nothing</p></section>\n" }
        return "<section id=\"attention\" class=\"alert\"><h2>Needs attention (\(items.count))</h2><ul>\(items.joined(separator: "\n"))</ul></section>\n"
    }

    func links() -> String {
        let links = snapshot.status.links
        var html = "<section id=\"links\"><h2>Links, last 24 hours</h2>"
        guard !links.isEmpty else { return html + "<p class=\"quiet\">nothing moved in the last 24 hours</p></section>\n" }
        html += "<table><tr><th>link</th><th>work</th><th>bytes</th><th>rate</th><th>attempts</th><th>failed</th><th>bytes per hour</th></tr>"
        for link in links {
            let origin = link.origin ?? "?"
            let series = (0..<24).map { ago in
                hours.filter { ($0.origin ?? "?") == origin && $0.destination == link.destination && $0.hoursAgo == 23 - ago }.reduce(Int64(0)) { $0 + $1.bytes }
            }
            html += "<tr data-link data-origin=\"\(esc(origin))\" data-destination=\"\(esc(link.destination))\" data-work=\"\(link.operationType.rawValue)\">"
            html += "<td>\(esc(origin)) &rarr; \(esc(link.destination))</td><td>\(esc(link.operationType.rawValue))</td>"
            html += "<td data-bytes=\"\(link.bytes)\">\(esc(formatByteCount(link.bytes)))</td>"
            html += "<td data-rate=\"\(link.bytesPerSecond.map { String(Int64($0)) } ?? "")\">\(link.bytesPerSecond.map { esc(formatByteCount(Int64($0))) + "/s" } ?? "-")</td>"
            html += "<td>\(link.attempts)</td><td\(link.failures > 0 ? " class=\"bad\"" : "")>\(link.failures)</td><td>\(Self.chart(series))</td></tr>"
        }
        return html + "</table></section>\n"
    }

    /// 24 bars, oldest hour on the left, scaled to the busiest hour.
    static func chart(_ series: [Int64]) -> String {
        let top = max(series.max() ?? 0, 1)
        var svg = "<svg class=\"chart\" width=\"144\" height=\"28\" viewBox=\"0 0 144 28\" role=\"img\" aria-label=\"bytes per hour, last 24 hours\">"
        for (index, bytes) in series.enumerated() {
            let height = bytes == 0 ? 0 : max(1, Int((Double(bytes) / Double(top) * 26).rounded()))
            svg += "<rect x=\"\(index * 6)\" y=\"\(28 - height)\" width=\"5\" height=\"\(height)\"><title>\(formatByteCount(bytes))</title></rect>"
        }
        return svg + "</svg>"
    }

    func locations() -> String {
        let copies = snapshot.status.copies
        guard !copies.isEmpty else { return "" }
        var html = "<section id=\"locations\"><h2>Locations</h2><table><tr><th>location</th><th>type</th><th>kind</th><th>present</th><th>bytes</th><th>disk used</th><th>reachable</th></tr>"
        for copy in copies {
            html += "<tr data-location=\"\(esc(copy.location))\"><td>\(esc(copy.location))</td><td>\(esc(copy.locationType))</td><td>\(esc(copy.kind))</td>"
            html += "<td>\(copy.present)</td><td>\(esc(formatByteCount(copy.bytesPresent)))</td>"
            html += "<td>\(copy.usedPercent.map { String(format: "%.0f%%", $0) } ?? "-")</td>"
            html += "<td\(copy.reachable == false ? " class=\"bad\"" : "")>\(copy.reachable.map { $0 ? "yes" : "NO" } ?? "-")</td></tr>"
        }
        return html + "</table></section>\n"
    }

    func queues() -> String {
        let status = snapshot.status, figures = snapshot.figures
        var html = "<section id=\"queues\"><h2>Queues and batch jobs</h2>"
        if status.operations.isEmpty {
            html += "<p class=\"quiet\">no unfinished operations</p>"
        } else {
            html += "<table><tr><th>queue</th><th>state</th><th>operations</th><th>oldest waiting</th></tr>"
            for row in status.operations {
                let wait = row.state == "pending" ? figures.queueWaits.first { $0.queue == row.queue }.map { Self.age($0.oldestPendingSeconds) } : nil
                html += "<tr data-queue=\"\(esc(row.queue))\" data-state=\"\(esc(row.state))\"><td>\(esc(row.queue))</td><td>\(esc(row.state))</td><td>\(row.count)</td><td>\(esc(wait ?? ""))</td></tr>"
            }
            html += "</table>"
        }
        if !figures.batchJobs.isEmpty {
            html += "<table><tr><th>scheduler</th><th>job state (live, or ended in 24 h)</th><th>jobs</th></tr>"
            for jobs in figures.batchJobs {
                html += "<tr data-jobs=\"\(esc(jobs.scheduler)):\(esc(jobs.state))\"><td>\(esc(jobs.scheduler))</td><td>\(esc(jobs.state))</td><td>\(jobs.count)</td></tr>"
            }
            html += "</table>"
        }
        return html + "</section>\n"
    }

    func services() -> String {
        let services = snapshot.status.services
        var html = "<section id=\"services\"><h2>Services</h2>"
        guard !services.isEmpty else { return html + "<p class=\"quiet\">no daemon has run</p></section>\n" }
        html += "<table><tr><th>service</th><th>instance</th><th>status</th><th>leader</th><th>heartbeat</th></tr>"
        for service in services {
            let leader = service.status == "STOPPED" || service.stale ? "-" : service.leader ? "yes" : "standby"
            html += "<tr data-service=\"\(esc(service.service))\"><td>\(esc(service.service))</td><td>\(esc(service.instance))</td>"
            html += "<td\(service.stale ? " class=\"bad\"" : "")>\(service.stale ? "STALE" : esc(service.status))</td><td>\(leader)</td>"
            html += "<td>\(esc(Self.age(service.secondsSinceHeartbeat))) ago</td></tr>"
        }
        return html + "</table></section>\n"
    }

    func staging() -> String {
        var html = "<section id=\"staging\"><h2>Staging requests</h2>"
        guard !requests.isEmpty else { return html + "<p class=\"quiet\">none open or ended in the last 7 days</p></section>\n" }
        html += "<table><tr><th>request</th><th>user</th><th>status</th><th>into</th><th>submitted</th><th>reason</th></tr>"
        for request in requests {
            html += "<tr data-request=\"\(esc(request.publicId))\"><td><code>\(esc(String(request.publicId.prefix(8))))</code></td><td>\(esc(request.username ?? "-"))</td>"
            html += "<td\(request.status == "FAILED" ? " class=\"bad\"" : "")>\(esc(request.status))</td><td>\(esc(request.destination ?? "-"))</td>"
            html += "<td>\(esc(Self.timestamp(request.submittedAt)))</td><td>\(esc(request.reason ?? ""))</td></tr>"
        }
        return html + "</table></section>\n"
    }

    func integrity() -> String {
        let archives = snapshot.status.integrity
        guard !archives.isEmpty else { return "" }
        var html = "<section id=\"integrity\"><h2>Archive integrity</h2><table><tr><th>archive</th><th>oldest verification</th><th>fixity read (24 h)</th><th>last audit</th><th>damaged</th><th>suspect runs</th></tr>"
        for archive in archives {
            html += "<tr data-archive=\"\(esc(archive.location))\"><td>\(esc(archive.location))</td>"
            html += "<td>\(archive.oldestVerificationDays.map { String(format: "%.1f days ago", $0) } ?? "-")</td>"
            html += "<td>\(esc(formatByteCount(archive.fixityBytesLastDay)))</td>"
            html += "<td>\(archive.lastAuditAt.map { esc(Self.timestamp($0)) + " " + esc(archive.lastAuditState?.rawValue ?? "") } ?? "never")</td>"
            html += "<td\(archive.damagedCopies > 0 ? " class=\"bad\"" : "")>\(archive.damagedCopies)</td>"
            html += "<td>\(archive.suspectRuns.isEmpty ? "-" : archive.suspectRuns.map { "<code>ccat audit show \($0)</code>" }.joined(separator: " "))</td></tr>"
        }
        return html + "</table></section>\n"
    }

    static func unavailable(error: String, refreshSeconds: Int) -> String {
        head(title: "ccat status: database unreachable", refreshSeconds: refreshSeconds)
            + "<section id=\"attention\" class=\"alert\"><h2>The ops database does not answer</h2><p data-database-error>\(esc(error))</p>"
            + "<p>fix: check PostgreSQL and the daemon's connection string (<code>ccat db status</code>); this page tries again every \(refreshSeconds) s</p></section></body></html>\n"
    }

    static func head(title: String, refreshSeconds: Int) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="\(refreshSeconds)">
        <meta name="viewport" content="width=device-width, initial-scale=1"><title>\(esc(title))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafbfc}
        h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.2em 0 .4em}h3{font-size:.9em;margin:0 0 .3em}
        header p{color:#57606a;margin:.2em 0}
        table{border-collapse:collapse;margin:.3em 0 .8em}td,th{padding:.2em .7em;border-bottom:1px solid #d0d7de;text-align:left;font-size:.9em}
        .flow{display:flex;flex-wrap:wrap;gap:.4em;list-style:none;padding:0}
        .stage{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5em .7em;min-width:9em}
        .stage+.stage::before{content:"\\2192";position:relative;left:-1.1em;color:#8c959f}
        .stage ul{list-style:none;padding:0;margin:0}.quiet{color:#8c959f}
        .alert{background:#fff1f0;border:1px solid #ff8182;border-radius:6px;padding:.3em 1em}
        .ok{background:#f0fff4;border:1px solid #4ac26b;border-radius:6px;padding:.3em 1em}
        .bad{color:#cf222e;font-weight:bold}code{background:#eaeef2;padding:0 .3em;border-radius:3px}
        .chart rect{fill:#0969da}
        </style></head><body>

        """
    }

    static func age(_ seconds: Double) -> String {
        switch seconds {
        case ..<120: return "\(Int(seconds)) s"
        case ..<7200: return "\(Int(seconds / 60)) min"
        case ..<172_800: return String(format: "%.1f h", seconds / 3600)
        default: return String(format: "%.1f days", seconds / 86_400)
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// Text made safe for HTML content and attribute values.
func esc(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
