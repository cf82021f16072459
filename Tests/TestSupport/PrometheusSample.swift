import Foundation

/// One sample of a Prometheus exposition, as `prometheus_client`'s parser reads it (an exposition
/// it cannot parse fails the test).
public struct PrometheusSample: Decodable, Sendable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public static func parse(_ text: String) throws -> [PrometheusSample] {
        let python = try TestEnvironment.python(importing: "prometheus_client")
        let input = try testScratchDirectory("exposition").appendingPathComponent("metrics.txt")
        try text.write(to: input, atomically: true, encoding: .utf8)
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            samples = [{"name": s.name, "labels": s.labels, "value": s.value}
                       for family in text_string_to_metric_families(open(sys.argv[1]).read()) for s in family.samples]
            print(json.dumps(samples))
            """
        let parsed = try runProcess(python, ["-c", script, input.path])
        guard parsed.status == 0 else { throw TestSetupError(description: "prometheus_client could not parse the exposition: \(parsed.stderr)") }
        return try JSONDecoder().decode([PrometheusSample].self, from: Data(parsed.stdout.utf8))
    }
}

extension [PrometheusSample] {
    /// The first sample named `name` whose labels include `labels`.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    public func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }
}
