import Managers
import OpsDB
import Testing

/// The optimizer's rule on measurements (pure logic).
@Suite("Link optimizer rule")
struct LinkOptimizerRuleTests {
    let rule = LinkOptimizerRule()
    func measured(attempts: Int = 10, succeeded: Int = 10, bytesPerSecond: Double, active: Int = 4, waiting: Int = 3) -> LinkMeasurement {
        LinkMeasurement(attempts: attempts, succeeded: succeeded, bytes: Int64(bytesPerSecond * 60), seconds: 60, activeJobs: active, waitingOperations: waiting)
    }

    @Test func growsWhileThroughputRisesAndShrinksOnFailuresOrFalls() {
        // Rising with every slot in use and all succeeding: one more.
        let up = rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 120e6))
        #expect(up.limit == 5 && up.reason.hasPrefix("more: throughput rose 20%"), "\(up.reason)")
        #expect(up.emaBytesPerSecond == 105e6)
        // A steep rise (25% or more): the link is far from full, half as many jobs again.
        let steep = rule.decide(limit: 6, bounds: 1...16, previousEMA: 100e6, measured: measured(bytesPerSecond: 130e6, active: 6))
        #expect(steep.limit == 9 && steep.reason.hasSuffix("+3 while it grows with the jobs"), "\(steep.reason)")
        #expect(rule.decide(limit: 2, bounds: 1...16, previousEMA: 100e6, measured: measured(bytesPerSecond: 200e6, active: 2)).limit == 3)
        #expect(rule.decide(limit: 6, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 200e6, active: 6)).limit == 8)
        // Too many failures: one fewer, whatever the throughput.
        let failing = rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(succeeded: 8, bytesPerSecond: 150e6))
        #expect(failing.limit == 3 && failing.reason.hasPrefix("fewer: only 80%"), "\(failing.reason)")
        // Falling with every slot in use: one fewer; steady: hold.
        #expect(rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 80e6)).limit == 3)
        let steady = rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 102e6))
        #expect(steady.limit == 4 && steady.reason.hasPrefix("hold: throughput steady"))
    }

    @Test func holdsWhenTheLinkIsNotTheLimitOrAtItsBounds() {
        // Fewer jobs than slots, or nothing waiting: a change in throughput says nothing of the link.
        #expect(rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 150e6, active: 2)).limit == 4)
        #expect(rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 50e6, waiting: 0)).limit == 4)
        // No finished transfer, or a first measurement: hold, keeping the average.
        let idle = rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(attempts: 0, succeeded: 0, bytesPerSecond: 0))
        #expect(idle.limit == 4 && idle.emaBytesPerSecond == 100e6 && idle.reason.contains("no transfer"))
        let first = rule.decide(limit: 2, bounds: 1...8, previousEMA: nil, measured: measured(bytesPerSecond: 50e6))
        #expect(first.limit == 2 && first.emaBytesPerSecond == 50e6)
        // An interval that moved nothing yet does not start the average.
        let empty = rule.decide(limit: 2, bounds: 1...8, previousEMA: nil, measured: measured(attempts: 1, succeeded: 1, bytesPerSecond: 0))
        #expect(empty.limit == 2 && empty.emaBytesPerSecond == nil)
        // A fall of less than a fifth is noise: hold.
        #expect(rule.decide(limit: 4, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 85e6)).limit == 4)
        // The bounds hold, and a limit outside them (bounds changed) comes back inside.
        #expect(rule.decide(limit: 8, bounds: 1...8, previousEMA: 100e6, measured: measured(bytesPerSecond: 200e6, active: 8)).limit == 8)
        #expect(rule.decide(limit: 1, bounds: 1...8, previousEMA: 100e6, measured: measured(succeeded: 1, bytesPerSecond: 1e6, active: 1)).limit == 1)
        #expect(rule.decide(limit: 12, bounds: 2...6, previousEMA: 100e6, measured: measured(bytesPerSecond: 100e6, active: 12)).limit == 6)
    }
}
