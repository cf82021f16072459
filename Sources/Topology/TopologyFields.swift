import Yams

final class IssueCollector {
    let file: String
    var issues: [TopologyIssue] = []
    init(file: String) { self.file = file }
    func add(_ node: Node?, _ field: String, _ message: String) {
        issues.append(TopologyIssue(file: file, line: node?.mark?.line, field: field, message: message))
    }
}

/// A YAML mapping being read: typed getters that report wrong types, and a check for unknown keys.
final class Fields {
    let node: Node
    let path: String
    let collector: IssueCollector
    let entries: [(String, Node)]

    init?(_ node: Node, path: String, collector: IssueCollector) {
        guard let mapping = node.mapping else {
            collector.add(node, path, "expected a mapping of keys to values")
            return nil
        }
        self.node = node
        self.path = path
        self.collector = collector
        var entries: [(String, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                collector.add(key, path, "keys must be strings")
                continue
            }
            entries.append((name, value))
        }
        self.entries = entries
    }

    subscript(key: String) -> Node? { entries.first { $0.0 == key }?.1 }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allow(_ known: [String]) {
        for (key, value) in entries where !known.contains(key) {
            collector.add(value, field(key), "unknown key '\(key)' (allowed here: \(known.joined(separator: ", ")))")
        }
    }

    func node(_ key: String, required: Bool = false) -> Node? {
        guard let value = self[key] else {
            if required { collector.add(node, field(key), "missing; this field is required") }
            return nil
        }
        if case .scalar(let scalar) = value, scalar.tag == Tag(.null) {
            if required { collector.add(value, field(key), "must not be empty") }
            return nil
        }
        return value
    }

    /// A scalar's text whatever its YAML type (for values like `time_limit: 90` or `"1:00:00"`).
    func scalarText(_ key: String) -> String? {
        guard let value = node(key) else { return nil }
        guard let scalar = value.scalar else {
            collector.add(value, field(key), "expected a single value")
            return nil
        }
        return scalar.string
    }

    func string(_ key: String, required: Bool = false) -> String? {
        guard let value = node(key, required: required) else { return nil }
        guard let scalar = value.scalar, scalar.tag == Tag(.str) || value.int == nil && value.bool == nil else {
            collector.add(value, field(key), "expected text")
            return nil
        }
        return scalar.string
    }

    /// A whole number the database's integer columns can hold.
    func int(_ key: String) -> Int? {
        guard let value = node(key) else { return nil }
        guard let number = value.int else {
            collector.add(value, field(key), "expected a whole number, got '\(String((value.string ?? "a structure").prefix(40)))'")
            return nil
        }
        guard Int(Int32.min)...Int(Int32.max) ~= number else {
            collector.add(value, field(key), "\(number) is too large (at most \(Int32.max))")
            return nil
        }
        return number
    }

    func bool(_ key: String) -> Bool? {
        guard let value = node(key) else { return nil }
        guard let flag = value.bool else {
            collector.add(value, field(key), "expected true or false, got '\(value.string ?? "a structure")'")
            return nil
        }
        return flag
    }

    func sequence(_ key: String, required: Bool = false) -> [Node]? {
        guard let value = node(key, required: required) else { return nil }
        guard let items = value.sequence else {
            collector.add(value, field(key), "expected a list")
            return nil
        }
        return Array(items)
    }
}
