// The two 7-bit Content-Transfer-Encodings of RFC 2045 as the downgrade writes them:
// quoted-printable line by line (hard line breaks kept as CRLF, soft breaks keep every
// line within 76 characters, trailing space or tab escaped) and base64 in lines of 76.
// Beyond what the RFC requires, a line that starts with "." or "From " has that first
// character escaped, so no dot-stuffing or mbox ">From " quoting can change it.

extension MIME {
    enum QuotedPrintable {
        /// RFC 2045 §6.7 (5): encoded lines are at most 76 characters.
        static let maximumLineLength = 76
        private static let hex = Array("0123456789ABCDEF".utf8)

        /// `lines` (text without terminators; `terminated` says whether a hard line break
        /// follows each) encoded, hard line breaks written as CRLF.
        static func encode(_ lines: [(text: ArraySlice<UInt8>, terminated: Bool)]) -> [UInt8] {
            var out: [UInt8] = []
            for line in lines {
                encode(line: line.text, into: &out)
                if line.terminated { out += [13, 10] }
            }
            return out
        }

        static func encode(line: ArraySlice<UInt8>, into out: inout [UInt8]) {
            var column = 0
            var i = line.startIndex
            while i < line.endIndex {
                let byte = line[i]
                let isLast = i == line.index(before: line.endIndex)
                let atStart = column == 0
                let mustEscape = byte == UInt8(ascii: "=") || byte > 126 || (byte < 32 && byte != 9)
                    || ((byte == 32 || byte == 9) && isLast)
                    || (atStart && byte == UInt8(ascii: "."))
                    || (atStart && byte == UInt8(ascii: "F") && line[i...].starts(with: Array("From ".utf8)))
                let width = mustEscape ? 3 : 1
                // Room for a soft break ("=") unless this is the line's last character.
                let limit = isLast ? maximumLineLength : maximumLineLength - 1
                if column + width > limit && column > 0 {
                    out += [UInt8(ascii: "="), 13, 10]
                    column = 0
                    continue  // re-decide this byte at the start of a fresh line
                }
                if mustEscape {
                    out += [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                } else {
                    out.append(byte)
                }
                column += width
                i = line.index(after: i)
            }
        }
    }
}

extension MIME {
    enum Base64Lines {
        /// RFC 2045 §6.8: encoded lines are at most 76 characters.
        static let lineLength = 76

        /// `bytes` in base64, lines of 76 joined by CRLF, without a final line break.
        static func encode(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            let encoded = Array(Base64.encode(Array(bytes)).utf8)
            var out: [UInt8] = []
            out.reserveCapacity(encoded.count + encoded.count / lineLength * 2 + 2)
            var i = 0
            while i < encoded.count {
                if i > 0 { out += [13, 10] }
                out += encoded[i..<min(i + lineLength, encoded.count)]
                i += lineLength
            }
            return out
        }

        /// The size `encode` would produce for `count` bytes.
        static func encodedSize(_ count: Int) -> Int {
            let characters = (count + 2) / 3 * 4
            return characters + max(0, (characters - 1) / lineLength) * 2
        }
    }
}
