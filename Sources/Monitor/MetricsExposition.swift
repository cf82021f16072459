import Foundation
import Managers
import OpsDB
import Prometheus

/// Everything a scrape or the status page reads from the catalogue, in one go.
public struct MonitoringSnapshot: Sendable {
    public var status: PipelineStatus
    public var figures: MonitoringFigures
    public var alerts: [Alert]
    public var alertCounts: [String: Int]
    /// Seconds the queries took.
    public var querySeconds: Double

    public static func read(_ db: OpsDB) async throws -> MonitoringSnapshot {
        let clock = ContinuousClock(), start = clock.now
        let status = try await db.pipelineStatus()
        let figures = try await db.monitoringFigures()
        let alerts = try await db.openAlerts()
        let alertCounts = try await db.openAlertCounts()
        let elapsed = clock.now - start
        return MonitoringSnapshot(status: status, figures: figures, alerts: alerts, alertCounts: alertCounts,
                                  querySeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

/// The Prometheus exposition of a snapshot. A registry is filled afresh for each scrape, so a
/// label set that no longer occurs (a queue that emptied) disappears instead of keeping its last
/// value. Labels are queues, locations, links, states and services: bounded by the topology,
/// never by the catalogue's size.
public enum MetricsExposition {
    public static func render(_ snapshot: MonitoringSnapshot?, leadership: [String: Bool], live: PrometheusCollectorRegistry?) -> String {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels).set(value)
        }
        gauge("ccat_database_up", "1 when the daemon read the ops database for this scrape, 0 when it could not.", [], snapshot == nil ? 0 : 1)
        for (service, leads) in leadership.sorted(by: { $0.key < $1.key }) {
            gauge("ccat_daemon_leader", "1 when this daemon leads the service, 0 when it waits as standby.", [("service", service)], leads ? 1 : 0)
        }
        var text = ""
        if let snapshot {
            fill(registry, snapshot)
        }
        text = registry.emitToString()
        if let live { text += live.emitToString() }
        return text
    }

    static func fill(_ registry: PrometheusCollectorRegistry, _ snapshot: MonitoringSnapshot) {
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels).set(value)
        }
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int64) {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, helpText: help), labels: labels).increment(by: value)
        }
        let status = snapshot.status, figures = snapshot.figures
        gauge("ccat_scrape_query_seconds", "Seconds the catalogue queries of this scrape took.", [], snapshot.querySeconds)
        gauge("ccat_files", "Raw data files registered.", [], Double(status.files))
        gauge("ccat_file_bytes", "Bytes of the raw data files registered.", [], Double(status.fileBytes))
        gauge("ccat_raw_data_packages", "Raw data packages.", [], Double(status.packages))
        gauge("ccat_raw_data_packages_archived_everywhere", "Raw data packages with a verified copy at every archive site.", [],
              Double(status.packagesArchivedEverywhere))
        for stage in status.stages {
            let labels = [("stage", stage.stage), ("status", stage.status)]
            gauge("ccat_stage_items", "Packages, transfers and staging jobs per stage and status.", labels, Double(stage.count))
            gauge("ccat_stage_bytes", "Bytes per stage and status.", labels, Double(stage.bytes))
        }
        for pending in figures.oldestPending {
            gauge("ccat_stage_unfinished", "Items of a stage not finished yet (pending, scheduled or in progress).", [("stage", pending.stage)],
                  Double(pending.count))
            gauge("ccat_stage_oldest_unfinished_seconds", "Age of the oldest unfinished item of a stage (0 when none).", [("stage", pending.stage)],
                  pending.oldestSeconds)
        }
        for copy in status.copies {
            let labels = [("location", copy.location), ("location_type", copy.locationType), ("kind", copy.kind)]
            gauge("ccat_copies_present", "Physical copies present per location and kind.", labels, Double(copy.present))
            gauge("ccat_copies_deleted", "Physical copies deleted per location and kind.", labels, Double(copy.deleted))
            gauge("ccat_copy_bytes", "Bytes of the copies present per location and kind.", labels, Double(copy.bytesPresent))
        }
        var seenLocations = Set<String>()
        for copy in status.copies where seenLocations.insert(copy.location).inserted {
            if let used = copy.usedPercent {
                gauge("ccat_location_used_ratio", "Fill of a location's storage at its last MONITORING check (0 to 1).", [("location", copy.location)], used / 100)
            }
            if let reachable = copy.reachable {
                gauge("ccat_location_reachable", "1 when the location answered its last MONITORING check.", [("location", copy.location)], reachable ? 1 : 0)
            }
        }
        for row in status.operations {
            gauge("ccat_operations", "Unfinished operations per queue and state.", [("queue", row.queue), ("state", row.state)], Double(row.count))
        }
        for wait in figures.queueWaits {
            gauge("ccat_queue_oldest_pending_seconds", "Age of the oldest operation waiting for submission, per queue.", [("queue", wait.queue)],
                  wait.oldestPendingSeconds)
        }
        for jobs in figures.batchJobs {
            gauge("ccat_batch_jobs", "Batch jobs live now or ended in the last 24 hours, per scheduler and state.",
                  [("scheduler", jobs.scheduler), ("state", jobs.state)], Double(jobs.count))
        }
        for service in status.services {
            let labels = [("service", service.service), ("instance", service.instance)]
            gauge("ccat_service_heartbeat_age_seconds", "Seconds since a daemon service wrote its heartbeat.", labels, service.secondsSinceHeartbeat)
            gauge("ccat_service_leader", "1 when the service instance holds its leader lock.", labels, service.leader ? 1 : 0)
            gauge("ccat_service_stale", "1 when a service that never stopped has been silent for several intervals.", labels, service.stale ? 1 : 0)
        }
        for requests in figures.stagingRequests {
            gauge("ccat_staging_requests", "Staging requests per status.", [("status", requests.status)], Double(requests.count))
        }
        for link in status.links {
            let labels = [("origin", link.origin ?? "unknown"), ("destination", link.destination), ("work", link.operationType.rawValue)]
            gauge("ccat_link_bytes_24h", "Bytes moved per link and kind of work in the last 24 hours.", labels, Double(link.bytes))
            gauge("ccat_link_attempts_24h", "Attempts per link and kind of work in the last 24 hours.", labels, Double(link.attempts))
            gauge("ccat_link_failures_24h", "Failed attempts per link and kind of work in the last 24 hours.", labels, Double(link.failures))
            if let rate = link.bytesPerSecond {
                gauge("ccat_link_throughput_bytes_per_second", "Bytes per second of the successful attempts per link in the last 24 hours.", labels, rate)
            }
        }
        for link in figures.linkTotals {
            let labels = [("origin", link.origin ?? "unknown"), ("destination", link.destination), ("work", link.operationType)]
            counter("ccat_link_bytes_total", "Bytes moved per link and kind of work since the history began.", labels, link.bytes)
            counter("ccat_link_attempts_total", "Attempts per link and kind of work since the history began.", labels, link.attempts)
            counter("ccat_link_failures_total", "Failed attempts per link and kind of work since the history began.", labels, link.failures)
        }
        for archive in status.integrity {
            let labels = [("location", archive.location)]
            if let days = archive.oldestVerificationDays {
                gauge("ccat_fixity_oldest_check_age_seconds", "Age of the oldest fixity check (or write) of a copy at a long-term archive.", labels, days * 86_400)
            }
            gauge("ccat_fixity_bytes_24h", "Bytes fixity passes read at a long-term archive in the last 24 hours.", labels, Double(archive.fixityBytesLastDay))
            gauge("ccat_archive_damaged_copies", "Archive copies found corrupted or missing and not yet repaired.", labels, Double(archive.damagedCopies))
            gauge("ccat_integrity_suspect_runs", "Fixity passes and audits stopped by the safety brake, waiting for 'ccat audit confirm'.", labels,
                  Double(archive.suspectRuns.count))
            if let audit = archive.lastAuditAt {
                gauge("ccat_audit_last_timestamp_seconds", "When the last audit of a long-term archive started (Unix time).", labels, audit.timeIntervalSince1970)
            }
        }
        var setAside: [String: Int] = [:]
        for issue in status.setAside { setAside[issue.manager, default: 0] += 1 }
        for (manager, count) in setAside.sorted(by: { $0.key < $1.key }) {
            gauge("ccat_manager_set_aside", "Items a manager could not handle and skips for now.", [("manager", manager)], Double(count))
        }
        var alerts: [String: Int] = Dictionary(uniqueKeysWithValues: AlertKind.allCases.map { ($0.rawValue, 0) })
        alerts.merge(snapshot.alertCounts) { $1 }
        for (kind, count) in alerts.sorted(by: { $0.key < $1.key }) {
            gauge("ccat_alerts_open", "Alert conditions open now, per kind.", [("kind", kind)], Double(count))
        }
    }
}
