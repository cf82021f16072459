import Foundation
import Managers
import OpsDB
import Prometheus

/// Everything a scrape or the status page reads from the catalogue, in one go.
public struct MonitoringSnapshot: Sendable {
    public var status: PipelineStatus
    public var figures: MonitoringFigures
    public var alertCounts: [String: Int]
    /// Seconds the queries took.
    public var querySeconds: Double

    public static func read(_ db: OpsDB) async throws -> MonitoringSnapshot {
        let clock = ContinuousClock(), start = clock.now
        let status = try await db.pipelineStatus()
        let figures = try await db.monitoringFigures()
        let alertCounts = try await db.openAlertCounts()
        let elapsed = clock.now - start
        return MonitoringSnapshot(status: status, figures: figures, alertCounts: alertCounts,
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
        let gauge = registry.gauge
        gauge(.databaseUp, [], snapshot == nil ? 0 : 1)
        for (service, leads) in leadership.sorted(by: { $0.key < $1.key }) {
            gauge(.daemonLeader, [("service", service)], leads ? 1 : 0)
        }
        if let snapshot { fill(registry, snapshot) }
        return registry.emitToString() + (live?.emitToString() ?? "")
    }

    static func linkLabels(_ link: LinkThroughput) -> [(String, String)] {
        [("origin", link.origin ?? "unknown"), ("destination", link.destination), ("work", link.operationType.rawValue)]
    }

    static func fill(_ registry: PrometheusCollectorRegistry, _ snapshot: MonitoringSnapshot) {
        let gauge = registry.gauge, counter = registry.counter
        let status = snapshot.status, figures = snapshot.figures
        gauge(.scrapeQuerySeconds, [], snapshot.querySeconds)
        gauge(.files, [], Double(status.files))
        gauge(.fileBytes, [], Double(status.fileBytes))
        gauge(.rawDataPackages, [], Double(status.packages))
        gauge(.rawDataPackagesArchivedEverywhere, [],
              Double(status.packagesArchivedEverywhere))
        for stage in status.stages {
            let labels = [("stage", stage.stage), ("status", stage.status)]
            gauge(.stageItems, labels, Double(stage.count))
            gauge(.stageBytes, labels, Double(stage.bytes))
        }
        for pending in figures.oldestPending {
            gauge(.stageUnfinished, [("stage", pending.stage)],
                  Double(pending.count))
            gauge(.stageOldestUnfinishedSeconds, [("stage", pending.stage)],
                  pending.oldestSeconds)
        }
        for copy in status.copies {
            let labels = [("location", copy.location), ("location_type", copy.locationType), ("kind", copy.kind)]
            gauge(.copiesPresent, labels, Double(copy.present))
            gauge(.copiesDeleted, labels, Double(copy.deleted))
            gauge(.copyBytes, labels, Double(copy.bytesPresent))
        }
        var seenLocations = Set<String>()
        for copy in status.copies where seenLocations.insert(copy.location).inserted {
            if let used = copy.usedPercent {
                gauge(.locationUsedRatio, [("location", copy.location)], used / 100)
            }
            if let reachable = copy.reachable {
                gauge(.locationReachable, [("location", copy.location)], reachable ? 1 : 0)
            }
        }
        for row in status.operations {
            gauge(.operations, [("queue", row.queue), ("state", row.state)], Double(row.count))
        }
        for wait in figures.queueWaits {
            gauge(.queueOldestPendingSeconds, [("queue", wait.queue)],
                  wait.oldestPendingSeconds)
        }
        for jobs in figures.batchJobs {
            gauge(.batchJobs,
                  [("scheduler", jobs.scheduler), ("state", jobs.state)], Double(jobs.count))
        }
        for service in status.services {
            let labels = [("service", service.service), ("instance", service.instance)]
            gauge(.serviceHeartbeatAgeSeconds, labels, service.secondsSinceHeartbeat)
            gauge(.serviceLeader, labels, service.leader ? 1 : 0)
            gauge(.serviceStale, labels, service.stale ? 1 : 0)
        }
        for requests in figures.stagingRequests {
            gauge(.stagingRequests, [("status", requests.status)], Double(requests.count))
        }
        for link in status.links {
            let labels = linkLabels(link)
            gauge(.linkBytes24h, labels, Double(link.bytes))
            gauge(.linkAttempts24h, labels, Double(link.attempts))
            gauge(.linkFailures24h, labels, Double(link.failures))
            if let rate = link.bytesPerSecond {
                gauge(.linkThroughputBytesPerSecond, labels, rate)
            }
        }
        for link in figures.linkTotals {
            let labels = linkLabels(link)
            counter(.linkBytesTotal, labels, link.bytes)
            counter(.linkAttemptsTotal, labels, link.attempts)
            counter(.linkFailuresTotal, labels, link.failures)
        }
        for link in status.linkConcurrency {
            let labels = [("origin_site", link.origin), ("destination_site", link.destination)]
            gauge(.linkTransferJobsLimit, labels, Double(link.activeLimit))
            gauge(.linkTransferJobs, labels, Double(link.activeJobs))
            gauge(.linkTransfersWaiting, labels, Double(link.waitingOperations))
            if let cap = link.rateCapBitsPerSecond {
                gauge(.linkRateCapBytesPerSecond, labels, Double(cap) / 8)
            }
        }
        for archive in status.integrity {
            let labels = [("location", archive.location)]
            if let days = archive.oldestVerificationDays {
                gauge(.fixityOldestCheckAgeSeconds, labels, days * 86_400)
            }
            gauge(.fixityBytes24h, labels, Double(archive.fixityBytesLastDay))
            gauge(.archiveDamagedCopies, labels, Double(archive.damagedCopies))
            gauge(.integritySuspectRuns, labels,
                  Double(archive.suspectRuns.count))
            if let audit = archive.lastAuditAt {
                gauge(.auditLastTimestampSeconds, labels, audit.timeIntervalSince1970)
            }
        }
        var setAside: [String: Int] = [:]
        for issue in status.setAside { setAside[issue.manager, default: 0] += 1 }
        for (manager, count) in setAside.sorted(by: { $0.key < $1.key }) {
            gauge(.managerSetAside, [("manager", manager)], Double(count))
        }
        var alerts: [String: Int] = Dictionary(uniqueKeysWithValues: AlertKind.allCases.map { ($0.rawValue, 0) })
        alerts.merge(snapshot.alertCounts) { $1 }
        for (kind, count) in alerts.sorted(by: { $0.key < $1.key }) {
            gauge(.alertsOpen, [("kind", kind)], Double(count))
        }
    }
}

/// Every metric the daemon's /metrics shows, with its help text: the dashboard and the alert
/// rules in etc/ use these names (a test holds them to it).
public enum CCatMetric: String, CaseIterable, Sendable {
    case databaseUp = "ccat_database_up"
    case daemonLeader = "ccat_daemon_leader"
    case scrapeQuerySeconds = "ccat_scrape_query_seconds"
    case files = "ccat_files"
    case fileBytes = "ccat_file_bytes"
    case rawDataPackages = "ccat_raw_data_packages"
    case rawDataPackagesArchivedEverywhere = "ccat_raw_data_packages_archived_everywhere"
    case stageItems = "ccat_stage_items"
    case stageBytes = "ccat_stage_bytes"
    case stageUnfinished = "ccat_stage_unfinished"
    case stageOldestUnfinishedSeconds = "ccat_stage_oldest_unfinished_seconds"
    case copiesPresent = "ccat_copies_present"
    case copiesDeleted = "ccat_copies_deleted"
    case copyBytes = "ccat_copy_bytes"
    case locationUsedRatio = "ccat_location_used_ratio"
    case locationReachable = "ccat_location_reachable"
    case operations = "ccat_operations"
    case queueOldestPendingSeconds = "ccat_queue_oldest_pending_seconds"
    case batchJobs = "ccat_batch_jobs"
    case serviceHeartbeatAgeSeconds = "ccat_service_heartbeat_age_seconds"
    case serviceLeader = "ccat_service_leader"
    case serviceStale = "ccat_service_stale"
    case stagingRequests = "ccat_staging_requests"
    case linkBytes24h = "ccat_link_bytes_24h"
    case linkAttempts24h = "ccat_link_attempts_24h"
    case linkFailures24h = "ccat_link_failures_24h"
    case linkThroughputBytesPerSecond = "ccat_link_throughput_bytes_per_second"
    case linkBytesTotal = "ccat_link_bytes_total"
    case linkAttemptsTotal = "ccat_link_attempts_total"
    case linkFailuresTotal = "ccat_link_failures_total"
    case linkTransferJobsLimit = "ccat_link_transfer_jobs_limit"
    case linkTransferJobs = "ccat_link_transfer_jobs"
    case linkTransfersWaiting = "ccat_link_transfers_waiting"
    case linkRateCapBytesPerSecond = "ccat_link_rate_cap_bytes_per_second"
    case fixityOldestCheckAgeSeconds = "ccat_fixity_oldest_check_age_seconds"
    case fixityBytes24h = "ccat_fixity_bytes_24h"
    case archiveDamagedCopies = "ccat_archive_damaged_copies"
    case integritySuspectRuns = "ccat_integrity_suspect_runs"
    case auditLastTimestampSeconds = "ccat_audit_last_timestamp_seconds"
    case managerSetAside = "ccat_manager_set_aside"
    case alertsOpen = "ccat_alerts_open"

    public var help: String {
        switch self {
        case .databaseUp: return "1 when the daemon read the ops database for this scrape, 0 when it could not."
        case .daemonLeader: return "1 when this daemon leads the service, 0 when it waits as standby."
        case .scrapeQuerySeconds: return "Seconds the catalogue queries of this scrape took."
        case .files: return "Raw data files registered."
        case .fileBytes: return "Bytes of the raw data files registered."
        case .rawDataPackages: return "Raw data packages."
        case .rawDataPackagesArchivedEverywhere: return "Raw data packages with a verified copy at every archive site."
        case .stageItems: return "Packages, transfers and staging jobs per stage and status."
        case .stageBytes: return "Bytes per stage and status."
        case .stageUnfinished: return "Items of a stage not finished yet (pending, scheduled or in progress)."
        case .stageOldestUnfinishedSeconds: return "Age of the oldest unfinished item of a stage (0 when none)."
        case .copiesPresent: return "Physical copies present per location and kind."
        case .copiesDeleted: return "Physical copies deleted per location and kind."
        case .copyBytes: return "Bytes of the copies present per location and kind."
        case .locationUsedRatio: return "Fill of a location's storage at its last MONITORING check (0 to 1)."
        case .locationReachable: return "1 when the location answered its last MONITORING check."
        case .operations: return "Unfinished operations per queue and state."
        case .queueOldestPendingSeconds: return "Age of the oldest operation waiting for submission, per queue."
        case .batchJobs: return "Batch jobs live now or ended in the last 24 hours, per scheduler and state."
        case .serviceHeartbeatAgeSeconds: return "Seconds since a daemon service wrote its heartbeat."
        case .serviceLeader: return "1 when the service instance holds its leader lock."
        case .serviceStale: return "1 when a service that never stopped has been silent for several intervals."
        case .stagingRequests: return "Staging requests per status."
        case .linkBytes24h: return "Bytes moved per link and kind of work in the last 24 hours."
        case .linkAttempts24h: return "Attempts per link and kind of work in the last 24 hours."
        case .linkFailures24h: return "Failed attempts per link and kind of work in the last 24 hours."
        case .linkThroughputBytesPerSecond: return "Bytes per second of the successful attempts per link in the last 24 hours."
        case .linkBytesTotal: return "Bytes moved per link and kind of work since the history began."
        case .linkAttemptsTotal: return "Attempts per link and kind of work since the history began."
        case .linkFailuresTotal: return "Failed attempts per link and kind of work since the history began."
        case .linkTransferJobsLimit: return "Transfer jobs a link between sites may run at once, as the link optimizer set it."
        case .linkTransferJobs: return "Transfer jobs a link between sites runs now (submitted or running)."
        case .linkTransfersWaiting: return "Transfers due on a link between sites that wait for a free job slot."
        case .linkRateCapBytesPerSecond: return "Cap of the bandwidth window in force on a link between sites, shared by its jobs (absent when none)."
        case .fixityOldestCheckAgeSeconds: return "Age of the oldest fixity check (or write) of a copy at a long-term archive."
        case .fixityBytes24h: return "Bytes fixity passes read at a long-term archive in the last 24 hours."
        case .archiveDamagedCopies: return "Archive copies found corrupted or missing and not yet repaired."
        case .integritySuspectRuns: return "Fixity passes and audits stopped by the safety brake, waiting for 'ccat audit confirm'."
        case .auditLastTimestampSeconds: return "When the last audit of a long-term archive started (Unix time)."
        case .managerSetAside: return "Items a manager could not handle and skips for now."
        case .alertsOpen: return "Alert conditions open now, per kind."
        }
    }

    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: rawValue, helpText: help) }
}

extension PrometheusCollectorRegistry {
    func gauge(_ metric: CCatMetric, _ labels: [(String, String)], _ value: Double) {
        makeGauge(descriptor: metric.descriptor, labels: labels).set(value)
    }

    func counter(_ metric: CCatMetric, _ labels: [(String, String)], _ value: Int64) {
        makeCounter(descriptor: metric.descriptor, labels: labels).increment(by: value)
    }
}
