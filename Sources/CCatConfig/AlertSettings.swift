import Yams

/// Where alerts go, from the `alerts:` section of the configuration file.
public struct AlertSettings: Sendable, Equatable {
    /// A URL that takes a JSON POST with a `text` field (Slack and Mattermost incoming webhooks).
    public var webhook: String?
    /// `smtp://HOST:PORT` or `smtps://...`; credentials, if any, from ~/.netrc.
    public var smtpURL: String?
    public var mailFrom: String?
    public var mailTo: [String] = []
    /// More messages than this due at once for one channel go as one digest.
    public var digestAbove = 3

    public init(webhook: String? = nil, smtpURL: String? = nil, mailFrom: String? = nil, mailTo: [String] = []) {
        self.webhook = webhook
        self.smtpURL = smtpURL
        self.mailFrom = mailFrom
        self.mailTo = mailTo
    }

    public var channels: [String] {
        (webhook == nil ? [] : ["webhook"]) + (smtpURL == nil || mailTo.isEmpty ? [] : ["email"])
    }
}

extension AlertSettings {
    static let keys: Set<String> = ["webhook", "smtp_url", "mail_from", "mail_to", "digest_above"]

    /// The `alerts:` mapping of the configuration file.
    static func parse(_ node: Node, path: String) throws -> AlertSettings {
        guard let mapping = node.mapping else {
            throw ConfigurationError(path: path, line: node.mark.map { $0.line },
                                     message: "'alerts' must be a mapping, e.g. 'webhook: https://chat.example.org/hooks/KEY'")
        }
        var settings = AlertSettings()
        for (key, value) in mapping {
            let name = key.string ?? "", line = value.mark.map { $0.line }
            func url(_ schemes: [String]) throws -> String {
                guard let text = value.string, let scheme = text.split(separator: ":").first, schemes.contains(scheme.lowercased()) else {
                    throw ConfigurationError(path: path, line: line, message: "alerts.\(name) must be a URL starting \(schemes.map { "\($0)://" }.joined(separator: " or "))")
                }
                return text
            }
            func address(_ text: String?) throws -> String {
                guard let text, text.contains("@"), !text.contains(where: { $0 == "<" || $0 == ">" || $0.isNewline || $0.isWhitespace }) else {
                    throw ConfigurationError(path: path, line: line, message: "alerts.\(name) must be e-mail addresses like archive-admins@example.org")
                }
                return text
            }
            switch name {
            case "webhook": settings.webhook = try url(["http", "https"])
            case "smtp_url": settings.smtpURL = try url(["smtp", "smtps"])
            case "mail_from": settings.mailFrom = try address(value.string)
            case "mail_to":
                settings.mailTo = try value.sequence.map { try $0.map { try address($0.string) } } ?? [try address(value.string)]
            case "digest_above":
                guard let number = value.int, number >= 1 else {
                    throw ConfigurationError(path: path, line: line, message: "alerts.digest_above must be a whole number of 1 or more")
                }
                settings.digestAbove = number
            default:
                throw ConfigurationError(path: path, line: key.mark.map { $0.line },
                                         message: "unknown key 'alerts.\(name)' (known: \(keys.sorted().joined(separator: ", ")))")
            }
        }
        if settings.smtpURL != nil, settings.mailTo.isEmpty {
            throw ConfigurationError(path: path, line: node.mark.map { $0.line }, message: "alerts.smtp_url is set but alerts.mail_to is not: say who gets the e-mail")
        }
        return settings
    }
}
