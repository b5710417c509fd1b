// The little of RFC 2045/2046 the 8-bit downgrade needs: a message's lines with their
// exact terminators, an entity's header fields (name, byte range, unfolded value), and
// the Content-Type (type, subtype, boundary) and Content-Transfer-Encoding read from
// them. Pure values over the message's bytes; nothing is copied until output.

/// The pieces of MIME the 8-bit downgrade reads and writes (a namespace).
enum MIME {}

extension MIME {
    /// One line of the message: `start..<contentEnd` is its text, `contentEnd..<end` its
    /// terminator (CRLF, LF, or nothing for a last line without one).
    struct Line {
        var start: Int
        var contentEnd: Int
        var end: Int
        var hasTerminator: Bool { end > contentEnd }

        /// The lines of `bytes`, split at LF (a CR before it belongs to the terminator).
        static func split(_ bytes: [UInt8]) -> [Line] {
            var lines: [Line] = []
            var start = 0
            var i = 0
            while i < bytes.count {
                if bytes[i] == 10 {
                    let contentEnd = i > start && bytes[i - 1] == 13 ? i - 1 : i
                    lines.append(Line(start: start, contentEnd: contentEnd, end: i + 1))
                    start = i + 1
                }
                i += 1
            }
            if start < bytes.count { lines.append(Line(start: start, contentEnd: bytes.count, end: bytes.count)) }
            return lines
        }
    }
}

extension MIME {
    /// A header field of an entity: its lower-cased name, its lines (first and continuation),
    /// and its value unfolded.
    struct HeaderField {
        var name: String
        var lines: Range<Int>
        var value: String
    }
}

extension MIME {
    /// The header block of an entity, which starts at a given line.
    struct EntityHeader {
        var fields: [HeaderField] = []
        /// The empty line that ends the header, if any (an entity may have no body at all).
        var separator: Int?
        /// The first line of the body (or the end of the entity).
        var bodyStart: Int
        /// The first header line with an octet above 127, if any.
        var eightBitLine: Int?

        init(_ bytes: [UInt8], _ lines: [Line], in range: Range<Int>) {
            bodyStart = range.upperBound
            var current: (name: String, first: Int, value: [UInt8])?
            func close(at line: Int) {
                if let c = current {
                    fields.append(HeaderField(name: c.name, lines: c.first..<line, value: String(decoding: c.value, as: UTF8.self)))
                }
                current = nil
            }
            for index in range {
                let line = lines[index]
                let text = bytes[line.start..<line.contentEnd]
                if eightBitLine == nil, text.contains(where: { $0 >= 0x80 }) { eightBitLine = index }
                if text.isEmpty {
                    close(at: index)
                    separator = index
                    bodyStart = index + 1
                    return
                }
                if text.first == 32 || text.first == 9, current != nil {
                    current?.value += text
                    continue
                }
                close(at: index)
                if let colon = text.firstIndex(of: UInt8(ascii: ":")) {
                    let name = String(decoding: text[..<colon], as: UTF8.self).mimeTrimmed().lowercased()
                    current = (name, index, Array(text[(colon + 1)...]))
                } else {
                    // Not a header line: the header ends here without an empty line (RFC 5322
                    // wants one, but the body then starts at this line, as MTAs read it).
                    bodyStart = index
                    return
                }
            }
            close(at: range.upperBound)
        }

        func field(_ name: String) -> HeaderField? { fields.first { $0.name == name } }
    }
}

extension MIME {
    /// What a Content-Type field says, with RFC 2045's default (text/plain) when absent.
    struct ContentType: Equatable {
        var type: String
        var subtype: String
        var boundary: String?

        static let textPlain = ContentType(type: "text", subtype: "plain")
        static let messageRFC822 = ContentType(type: "message", subtype: "rfc822")

        init(type: String, subtype: String, boundary: String? = nil) {
            self.type = type
            self.subtype = subtype
            self.boundary = boundary
        }

        /// Parses `type/subtype; name=value; name="quoted value"` (comments are not expected).
        init?(_ value: String) {
            var parts = ContentType.parameters(value)
            guard let first = parts.first, let slash = first.firstIndex(of: "/") else { return nil }
            type = String(first[..<slash]).mimeTrimmed().lowercased()
            subtype = String(first[first.index(after: slash)...]).mimeTrimmed().lowercased()
            guard !type.isEmpty, !subtype.isEmpty else { return nil }
            parts.removeFirst()
            boundary = nil
            for parameter in parts {
                guard let equals = parameter.firstIndex(of: "=") else { continue }
                let name = parameter[..<equals].mimeTrimmed().lowercased()
                var raw = parameter[parameter.index(after: equals)...].mimeTrimmed()
                if raw.hasPrefix("\""), raw.hasSuffix("\""), raw.count >= 2 {
                    raw = String(raw.dropFirst().dropLast()).mimeUnescaped()
                }
                if name == "boundary" { boundary = raw }
            }
        }

        /// Splits at semicolons outside quoted strings.
        static func parameters(_ value: String) -> [String] {
            var result: [String] = []
            var current = ""
            var quoted = false
            var escaped = false
            for character in value {
                if escaped {
                    escaped = false
                } else if character == "\\" && quoted {
                    escaped = true
                } else if character == "\"" {
                    quoted.toggle()
                } else if character == ";" && !quoted {
                    result.append(current)
                    current = ""
                    continue
                }
                current.append(character)
            }
            result.append(current)
            return result
        }
    }
}

extension MIME {
    /// The Content-Transfer-Encoding of an entity; absent means 7bit (RFC 2045 §6.1).
    enum TransferEncoding: Equatable {
        case sevenBit, eightBit, binary, quotedPrintable, base64, other(String)

        init(_ value: String?) {
            switch value?.mimeTrimmed().lowercased() {
            case nil, "7bit": self = .sevenBit
            case "8bit": self = .eightBit
            case "binary": self = .binary
            case "quoted-printable": self = .quotedPrintable
            case "base64": self = .base64
            case let other?: self = .other(other)
            }
        }
    }
}

extension StringProtocol {
    func mimeTrimmed() -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let first = firstIndex(where: { !blank($0) }), let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }

    func mimeUnescaped() -> String {
        var result = ""
        var escaped = false
        for character in self {
            if escaped || character != "\\" {
                result.append(character)
                escaped = false
            } else {
                escaped = true
            }
        }
        return result
    }
}
