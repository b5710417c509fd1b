// A small MIME reader for the tests, written apart from the converter it checks: the
// leaf entities of a message in order (multipart followed through its boundaries,
// message/rfc822 into the enclosed message), each body decoded by its
// Content-Transfer-Encoding (quoted-printable, base64, or as is).

import Foundation

enum MIMEReader {
    struct Leaf {
        var contentType: String
        var decoded: [UInt8]
    }

    static func leaves(_ message: [UInt8]) -> [Leaf] { entity(message[...], defaultType: "text/plain") }

    /// Lines with their terminators.
    static func lines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        for i in bytes.indices where bytes[i] == 10 {
            result.append(bytes[start...i])
            start = i + 1
        }
        if start < bytes.endIndex { result.append(bytes[start...]) }
        return result
    }

    static func text(_ line: ArraySlice<UInt8>) -> String {
        String(decoding: line.filter { $0 != 13 && $0 != 10 }, as: UTF8.self)
    }

    static func entity(_ bytes: ArraySlice<UInt8>, defaultType: String) -> [Leaf] {
        var fields: [String: String] = [:]
        var lastName: String?
        var bodyStart = bytes.endIndex
        for line in lines(bytes) {
            let t = text(line)
            if t.isEmpty { bodyStart = line.endIndex; break }
            if t.first == " " || t.first == "\t", let name = lastName {
                fields[name, default: ""] += t
            } else if let colon = t.firstIndex(of: ":") {
                let name = t[..<colon].lowercased()
                if fields[name] == nil { fields[name] = String(t[t.index(after: colon)...]) }
                lastName = name
            } else {
                bodyStart = line.startIndex
                break
            }
        }
        let body = bytes[bodyStart...]
        let typeField = fields["content-type"] ?? defaultType
        let type = typeField.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? defaultType
        if type.hasPrefix("multipart/"), let boundary = parameter("boundary", in: typeField) {
            return multipart(body, boundary: boundary, partType: type == "multipart/digest" ? "message/rfc822" : "text/plain")
        }
        if type == "message/rfc822" { return entity(body, defaultType: "text/plain") }
        let encoding = fields["content-transfer-encoding"]?.trimmingCharacters(in: .whitespaces).lowercased()
        switch encoding {
        case "quoted-printable": return [Leaf(contentType: type, decoded: quotedPrintable(body))]
        case "base64": return [Leaf(contentType: type, decoded: base64(body))]
        default: return [Leaf(contentType: type, decoded: Array(body))]
        }
    }

    static func parameter(_ name: String, in field: String) -> String? {
        for part in field.split(separator: ";").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == name else { continue }
            return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return nil
    }

    /// The parts between delimiter lines; the line break before a delimiter is not the part's.
    static func multipart(_ body: ArraySlice<UInt8>, boundary: String, partType: String) -> [Leaf] {
        var result: [Leaf] = []
        var partStart: Int?
        for line in lines(body) {
            let t = text(line).trimmingCharacters(in: .whitespaces)
            guard t == "--" + boundary || t == "--" + boundary + "--" else { continue }
            if let start = partStart {
                var end = line.startIndex
                if end > start, body[end - 1] == 10 { end -= 1 }
                if end > start, body[end - 1] == 13 { end -= 1 }
                result += entity(body[start..<end], defaultType: partType)
            }
            partStart = t.hasSuffix("--") && t != "--" + boundary ? nil : line.endIndex
            if partStart == nil { break }
        }
        return result
    }

    static func quotedPrintable(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        let b = Array(bytes)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "=") {
                if i + 2 < b.count, b[i + 1] == 13, b[i + 2] == 10 { i += 3; continue }  // soft line break
                if i + 1 < b.count, b[i + 1] == 10 { i += 2; continue }
                if i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                    out.append(v)
                    i += 3
                    continue
                }
            }
            out.append(b[i])
            i += 1
        }
        return out
    }

    static func base64(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        [UInt8](Data(base64Encoded: String(decoding: bytes.filter { $0 != 13 && $0 != 10 }, as: UTF8.self)) ?? Data())
    }
}
