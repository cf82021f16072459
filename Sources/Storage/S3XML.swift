import Foundation

/// The few shapes of XML S3 answers with: flat records (`<Contents>`, `<Upload>`) of text
/// elements, and top-level text elements (`<UploadId>`, `<IsTruncated>`, `<Code>`). S3 responses
/// are generated, flat and well-formed, so a scanner for these shapes is enough.
enum S3XML {
    /// The text of every `<name>` element, in document order.
    static func values(_ name: String, in xml: String) -> [String] {
        records(name, in: xml).map(unescape)
    }

    static func value(_ name: String, in xml: String) -> String? {
        values(name, in: xml).first
    }

    /// The inner XML of every `<record>` element, in document order.
    static func records(_ record: String, in xml: String) -> [String] {
        var result: [String] = []
        var rest = xml[...]
        let open = "<\(record)>", close = "</\(record)>"
        while let start = rest.range(of: open) {
            guard let end = rest.range(of: close, range: start.upperBound..<rest.endIndex) else { break }
            result.append(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return result
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            guard character == "&", let semicolon = text[index...].firstIndex(of: ";") else {
                out.append(character)
                index = text.index(after: index)
                continue
            }
            let entity = text[text.index(after: index)..<semicolon]
            switch entity {
            case "amp": out.append("&")
            case "lt": out.append("<")
            case "gt": out.append(">")
            case "quot": out.append("\"")
            case "apos": out.append("'")
            default:
                var scalar: Unicode.Scalar?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                } else if entity.hasPrefix("#") {
                    scalar = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init)
                }
                if let scalar { out.unicodeScalars.append(scalar) } else { out += "&\(entity);" }
            }
            index = text.index(after: semicolon)
        }
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
