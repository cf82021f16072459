import Foundation
import Logging
import OpsDB

/// The rule that moves a link's concurrent transfer jobs, after FTS3's optimizer: more while the
/// link's throughput rises and its transfers succeed, fewer when they fail or throughput falls,
/// always within the link's bounds, and only when the link uses the slots it has (less work than
/// slots says nothing about the link).
public struct LinkOptimizerRule: Sendable, Equatable {
    /// Weight of the newest interval in the moving average of throughput: low, so that one
    /// interval's burst (transfers of a job start and end in steps) moves the average little and
    /// the next ordinary interval does not read as a fall.
    public var emaWeight = 0.25
    /// Below this share of successful attempts the link gets one job fewer.
    public var successFloor = 0.9
    /// At least this share must succeed for the link to get one job more.
    public var successToGrow = 0.97
    /// Throughput this much above the average is a rise ...
    public var rise = 1.05
    /// ... and this much above it says the link is far from full (throughput still grows with
    /// its jobs): the link gets half as many jobs again, not one, as TCP's slow start doubles its
    /// window until the first sign of a full path.
    public var steepRise = 1.25
    /// ... and this much below it a fall.
    public var fall = 0.8

    public init() {}

    public func decide(limit: Int, bounds: ClosedRange<Int>, previousEMA: Double?, measured: LinkMeasurement) -> LinkDecision {
        let current = min(max(limit, bounds.lowerBound), bounds.upperBound)
        func clamp(_ value: Int) -> Int { min(max(value, bounds.lowerBound), bounds.upperBound) }
        guard let success = measured.successRate, let rate = measured.bytesPerSecond else {
            return LinkDecision(limit: current, emaBytesPerSecond: previousEMA, reason: "hold: no transfer on the link finished since the last decision")
        }
        // An interval in which nothing moved yet does not start the average.
        let ema = previousEMA.map { emaWeight * rate + (1 - emaWeight) * $0 } ?? (rate > 0 ? rate : nil)
        let shown = "\(Self.rate(rate)), \(Self.percent(success)) succeeded"
        let saturated = measured.activeJobs >= current && measured.waitingOperations > 0
        if success < successFloor {
            return LinkDecision(limit: clamp(current - 1), emaBytesPerSecond: ema, reason: "fewer: only \(Self.percent(success)) of \(measured.attempts) attempts succeeded (\(shown))")
        }
        guard let previousEMA, previousEMA > 0 else {
            return LinkDecision(limit: current, emaBytesPerSecond: ema, reason: "hold: first measurement (\(shown))")
        }
        let change = rate / previousEMA
        if change >= rise && success >= successToGrow {
            guard saturated else {
                return LinkDecision(limit: current, emaBytesPerSecond: ema,
                                    reason: "hold: throughput rose but the link does not fill its \(current) slots (\(measured.activeJobs) jobs, \(measured.waitingOperations) waiting; \(shown))")
            }
            let step = change >= steepRise ? max(1, current / 2) : 1
            let next = clamp(current + step)
            return LinkDecision(limit: next, emaBytesPerSecond: ema,
                                reason: next > current ? "more: throughput rose \(Self.percent(change - 1)) (\(shown))\(next - current > 1 ? "; +\(next - current) while it grows with the jobs" : "")"
                                                       : "hold: at the link's maximum \(bounds.upperBound) (\(shown))")
        }
        if change <= fall && saturated {
            let next = clamp(current - 1)
            return LinkDecision(limit: next, emaBytesPerSecond: ema,
                                reason: next < current ? "fewer: throughput fell \(Self.percent(1 - change)) with every slot in use (\(shown))" : "hold: at the link's minimum \(bounds.lowerBound) (\(shown))")
        }
        return LinkDecision(limit: current, emaBytesPerSecond: ema, reason: "hold: throughput steady (\(shown))")
    }

    static func percent(_ value: Double) -> String { "\(Int((value * 100).rounded()))%" }
    static func rate(_ bytesPerSecond: Double) -> String { "\(formatByteCount(Int64(bytesPerSecond)))/s" }
}

/// Applies the rule to every link once per `linkDecisionSeconds` (run in the transfer manager's
/// cycle, under its leader lock).
struct LinkOptimizer {
    let settings: ManagerSettings
    var rule = LinkOptimizerRule()

    /// Decisions made this time.
    func run(_ db: OpsDB, logger: Logger) async throws -> Int {
        var decided = 0
        for link in try await db.linkConcurrency() where link.secondsSinceDecision >= settings.linkDecisionSeconds {
            let measured = try await db.linkMeasurement(link, since: link.decidedAt)
            // A link that carried nothing and finished nothing has nothing to say: its interval
            // grows until it does.
            guard measured.attempts > 0 || measured.bytes > 0 else { continue }
            let decision = rule.decide(limit: link.activeLimit, bounds: link.minActive...link.maxActive, previousEMA: link.emaBytesPerSecond, measured: measured)
            try await db.recordLinkDecision(link, measured: measured, decision: decision)
            if decision.limit != link.activeLimit {
                logger.info("link concurrency \(link.origin) -> \(link.destination): \(link.activeLimit) -> \(decision.limit) jobs",
                            metadata: ["reason": "\(decision.reason)"])
            }
            decided += 1
        }
        return decided
    }
}
