import CCatConfig
import Foundation
@testable import Monitor
import OpsDB
import Scheduling
import Testing
import TestSupport
import Yams

/// What ships in etc/ for Prometheus and Grafana names only metrics the daemon shows, and each
/// alert rule says how bad it is, what happened and what to do.
struct MonitoringFilesTests {
    /// Every metric name the daemon's /metrics can show (a histogram also as its three series).
    static let shown: Set<String> = {
        let histogram = Dispatcher.submissionMetric
        return Set(CCatMetric.allCases.map(\.rawValue) + [histogram + "_bucket", histogram + "_count", histogram + "_sum"])
    }()

    static func metricNames(in text: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "ccat_[a-z0-9_]+")
        return Set(pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
    }

    @Test func alertRulesUseShownMetricsAndSayWhatToDo() throws {
        let text = try String(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("etc/prometheus/ccat-alerts.yaml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let groups = try #require(document["groups"] as? [[String: Any]])
        var rules = 0
        for group in groups {
            for rule in try #require(group["rules"] as? [[String: Any]]) {
                rules += 1
                let name = rule["alert"] as? String ?? "?"
                let expr = try #require(rule["expr"] as? String, "\(name) has no expr")
                let used = Self.metricNames(in: expr)
                #expect(!used.isEmpty, "\(name) uses no ccat metric")
                #expect(used.isSubset(of: Self.shown), "\(name) uses metrics the daemon does not show: \(used.subtracting(Self.shown))")
                let labels = rule["labels"] as? [String: Any], annotations = rule["annotations"] as? [String: Any]
                #expect(["critical", "warning", "info"].contains(labels?["severity"] as? String ?? ""), "\(name) has no severity")
                #expect((annotations?["summary"] as? String)?.isEmpty == false && (annotations?["fix"] as? String)?.isEmpty == false,
                        "\(name) must say what happened and how to fix it")
            }
        }
        #expect(rules >= 10)
    }

    @Test func dashboardUsesShownMetrics() throws {
        let data = try Data(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("etc/grafana/ccat-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= 20)
        let used = expressions.reduce(into: Set<String>()) { $0.formUnion(Self.metricNames(in: $1)) }
        #expect(used.isSubset(of: Self.shown), "the dashboard uses metrics the daemon does not show: \(used.subtracting(Self.shown))")
        // Every link and archive figure a person looks for has a panel.
        for needed in ["ccat_link_bytes_total", "ccat_operations", "ccat_stage_oldest_unfinished_seconds", "ccat_fixity_oldest_check_age_seconds",
                       "ccat_service_heartbeat_age_seconds", "ccat_dispatch_submission_seconds_bucket"] {
            #expect(used.contains(needed), "no panel shows \(needed)")
        }
    }

    @Test func metricNamesFollowPrometheusConventions() {
        for metric in CCatMetric.allCases {
            #expect(metric.rawValue.range(of: "^ccat_[a-z0-9_]+$", options: .regularExpression) != nil, "\(metric.rawValue)")
            #expect(!metric.help.isEmpty && metric.help.hasSuffix("."), "\(metric.rawValue) needs a help sentence")
        }
    }
}

struct HTTPAddressTests {
    @Test(arguments: [("9464", "127.0.0.1", 9464), (":9464", "127.0.0.1", 9464), ("0.0.0.0:80", "0.0.0.0", 80),
                      ("[::1]:9464", "::1", 9464), ("localhost:0", "localhost", 0)])
    func parses(_ text: String, _ host: String, _ port: Int) throws {
        #expect(try HTTPAddress(parsing: text) == HTTPAddress(host: host, port: port))
    }

    @Test(arguments: ["", "host", "1:2:3", "127.0.0.1:70000", "[::1]", "[::1]9464", "127.0.0.1:-1", "127.0.0.1:port"])
    func refuses(_ text: String) {
        #expect(throws: MonitorError.badAddress(text)) { try HTTPAddress(parsing: text) }
    }

    @Test func urlsBracketIPv6() throws {
        #expect(try HTTPAddress(parsing: "[::1]:8080").url == "http://[::1]:8080/")
        #expect(try HTTPAddress(parsing: "8080").url == "http://127.0.0.1:8080/")
    }

    @Test func anAddressOfAnotherHostIsRefusedWithTheReason() {
        // 192.0.2.1 is TEST-NET-1: never an address of this host.
        #expect {
            try HTTPAddress(host: "192.0.2.1", port: 9464).checkAvailable()
        } throws: { error in
            (error as? MonitorError)?.description.hasPrefix("cannot listen on 192.0.2.1:9464 for the status page and /metrics: ") == true
        }
    }
}

struct AlertSettingsTests {
    @Test func aFullAlertsSectionIsRead() throws {
        let configuration = try CCatConfiguration.parse("""
            alerts:
              webhook: https://chat.example.org/hooks/abc
              smtp_url: smtp://mail.example.org:25
              mail_from: ccat@example.org
              mail_to: [archive-admins@example.org, oncall@example.org]
              digest_above: 5
            http: 127.0.0.1:9464
            """, path: "ccat.yaml")
        #expect(configuration.alerts.webhook == "https://chat.example.org/hooks/abc")
        #expect(configuration.alerts.mailTo == ["archive-admins@example.org", "oncall@example.org"])
        #expect(configuration.alerts.digestAbove == 5)
        #expect(configuration.alerts.channels == ["webhook", "email"])
        #expect(configuration.http == "127.0.0.1:9464")
    }

    @Test(arguments: [
        ("alerts:\n  webhook: ftp://x", "alerts.webhook must be a URL starting http:// or https://"),
        ("alerts:\n  smtp_url: smtp://mail", "alerts.smtp_url is set but alerts.mail_to is not"),
        ("alerts:\n  mail_to: not-an-address\n  smtp_url: smtp://m", "alerts.mail_to must be e-mail addresses"),
        ("alerts:\n  pager: yes", "unknown key 'alerts.pager'"),
        ("alerts: everything", "'alerts' must be a mapping"),
    ])
    func mistakesAreNamed(_ text: String, _ message: String) {
        #expect {
            _ = try CCatConfiguration.parse(text, path: "ccat.yaml")
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

/// The status page's text cannot carry markup from the catalogue (an error message, a user name).
struct StatusPageEscapingTests {
    @Test func markupInTheCatalogueIsShownAsText() {
        #expect(esc("<script>alert('x')</script> & \"q\"") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
    }

    @Test func theChartScalesToTheBusiestHour() {
        let svg = StatusPage.chart([0, 50, 100] + Array(repeating: 0, count: 21))
        #expect(svg.contains("<rect x=\"12\" y=\"2\" width=\"5\" height=\"26\">"))
        #expect(svg.contains("<rect x=\"6\" y=\"15\" width=\"5\" height=\"13\">"))
        #expect(svg.contains("<rect x=\"0\" y=\"28\" width=\"5\" height=\"0\">"))
    }
}
