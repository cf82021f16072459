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

    /// An ISO 8601 time as S3 writes it (`2026-12-03T06:31:25.000Z`, fractions optional).
    static func date(_ text: String) -> Date? {
        let withFractions = ISO8601DateFormatter()
        withFractions.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return withFractions.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// The inner XML of every `<record>` element, in document order. Searched as UTF-8 bytes: a
    /// String search compares whole characters, and a tag right after a character that joins the
    /// next one (U+0605, say) would not be found.
    static func records(_ record: String, in xml: String) -> [String] {
        let bytes = Array(xml.utf8)
        let open = Array("<\(record)>".utf8), close = Array("</\(record)>".utf8)
        var result: [String] = []
        var from = 0
        while let start = find(open, in: bytes, from: from) {
            guard let end = find(close, in: bytes, from: start + open.count) else { break }
            result.append(String(decoding: bytes[(start + open.count)..<end], as: UTF8.self))
            from = end + close.count
        }
        return result
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        for index in from...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
        }
        return nil
    }

    /// XML's five entities and numeric character references, scalar by scalar (for the same
    /// reason as `records`).
    static func unescape(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "&")) else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "&", let semicolon = scalars[index...].firstIndex(of: ";") else {
                out.append(scalars[index])
                index += 1
                continue
            }
            let entity = String(String.UnicodeScalarView(scalars[(index + 1)..<semicolon]))
            var replacement: Unicode.Scalar?
            switch entity {
            case "amp": replacement = "&"
            case "lt": replacement = "<"
            case "gt": replacement = ">"
            case "quot": replacement = "\""
            case "apos": replacement = "'"
            default:
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    replacement = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                } else if entity.hasPrefix("#") {
                    replacement = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init)
                }
            }
            if let replacement {
                out.append(replacement)
            } else {
                out.append(contentsOf: scalars[index...semicolon])
            }
            index = semicolon + 1
        }
        return String(out)
    }

    /// `&`, `<`, `>` and `"` as entities, scalar by scalar.
    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
