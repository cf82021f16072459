import CCatConfig
import Foundation
import Logging
import Managers
import OpsDB

/// The alert manager: each cycle finds the conditions that need a person (an operation in
/// intervention, a stale heartbeat, an unreachable or too full location, a failed staging request,
/// damaged archive copies, a run stopped by the safety brake), raises those not yet raised and
/// clears those that ended, then sends what is due. One message per condition and one when it
/// clears; more than `digestAbove` due at once for a channel go as one digest; a failed delivery
/// is tried again with a growing pause. It runs as a service of its own under its own leader
/// lock, so no other manager waits on a receiver and two daemons never both send.
public struct AlertManager: ManagerCycle {
    public let name = "alert-manager"
    let settings: AlertSettings
    /// Names the sending side in subjects (the daemon's instance by default).
    let site: String

    public init(settings: AlertSettings, site: String) {
        self.settings = settings
        self.site = site
    }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let conditions = try await db.alertConditions()
        let changes = try await db.applyAlertConditions(conditions, channels: settings.channels)
        for key in changes.raised { logger.warning("alert raised", metadata: ["condition": "\(key)"]) }
        for key in changes.cleared { logger.notice("alert cleared", metadata: ["condition": "\(key)"]) }
        for channel in settings.channels {
            try await deliver(channel: channel, db: db, logger: logger)
        }
        _ = try await db.pruneAlerts(olderThanDays: 90)
        // Raising and clearing are this cycle's changes; deliveries are not (a receiver that is
        // down must not make the loop spin).
        return 0
    }

    func deliver(channel: String, db: OpsDB, logger: Logger) async throws {
        let due = try await db.dueAlertMessages(channel: channel, limit: 200)
        guard !due.isEmpty else { return }
        // A digest when many are due at once; otherwise one message each.
        let batches = due.count > settings.digestAbove ? [due] : due.map { [$0] }
        for batch in batches {
            let ids = batch.map(\.id)
            do {
                try await send(batch, channel: channel)
                try await db.markAlertMessagesDelivered(ids)
                logger.info("alert sent", metadata: ["channel": "\(channel)", "messages": "\(batch.count)"])
            } catch {
                let abandoned = try await db.markAlertMessagesFailed(ids, error: "\(error)")
                logger.warning("alert not delivered, trying again later", metadata: ["channel": "\(channel)", "error": "\(error)"])
                if !abandoned.isEmpty {
                    logger.error("alert messages given up after a day of failed deliveries", metadata: ["channel": "\(channel)", "messages": "\(abandoned)"])
                }
                // The receiver is down: the rest waits for the next cycle.
                return
            }
        }
    }

    func send(_ messages: [AlertMessage], channel: String) async throws {
        switch channel {
        case "webhook":
            guard let url = settings.webhook else { return }
            try await AlertTransport.postJSON(try AlertText.webhook(messages, site: site), to: url)
        case "email":
            guard let url = settings.smtpURL, !settings.mailTo.isEmpty else { return }
            let from = settings.mailFrom ?? "ccat@localhost"
            try await AlertTransport.mail(AlertText.mail(messages, from: from, to: settings.mailTo, site: site, date: Date()),
                                          url: url, from: from, to: settings.mailTo)
        default:
            throw AlertDeliveryError(channel: channel, reason: "no such channel")
        }
    }
}
