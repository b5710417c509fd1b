// SMTP replies (RFC 5321 §4.2) and the parser that cuts them out of the byte stream.
// The parser is a pure value: feed it bytes, take whole replies out. It accepts a last
// line with no text (`250 `, as smtp-sink sends, or a bare `250`) and LF without CR; it
// refuses what is not SMTP (no three digits, mixed codes in one reply, endless lines).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct SMTPReply: Equatable, Sendable, CustomStringConvertible {
    public var code: Int
    /// The text of each line, after the code and its separator.
    public var lines: [String]

    public init(code: Int, lines: [String] = [""]) {
        self.code = code
        self.lines = lines
    }

    public init(_ code: Int, _ text: String) { self.init(code: code, lines: [text]) }

    public var isPositiveCompletion: Bool { (200..<300).contains(code) }
    public var isIntermediate: Bool { (300..<400).contains(code) }
    public var isTransient: Bool { (400..<500).contains(code) }
    public var isPermanent: Bool { (500..<600).contains(code) }

    /// The reply as one line, for logs and diagnostics: `451 4.3.0 try later`.
    public var description: String {
        let text = lines.joined(separator: " / ").trimmingSpaces()
        return text.isEmpty ? "\(code)" : "\(code) \(text)"
    }

    /// The enhanced status code (RFC 3463) the first line starts with, parsed from its
    /// bytes (the same rules as `enhancedStatus`, without building a string per reply).
    public var enhancedCode: EnhancedStatus? {
        guard var first = lines.first else { return nil }
        return first.withUTF8 { b -> EnhancedStatus? in
            var i = 0
            while i < b.count && b[i] == UInt8(ascii: " ") { i += 1 }
            // class: one of 2, 4, 5
            guard i + 1 < b.count, b[i] == UInt8(ascii: "2") || b[i] == UInt8(ascii: "4") || b[i] == UInt8(ascii: "5"),
                  b[i + 1] == UInt8(ascii: ".") else { return nil }
            let klass = Int(b[i] - UInt8(ascii: "0"))
            i += 2
            var numbers = (0, 0)
            for field in 0..<2 {
                var value = 0, digits = 0
                while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                    value = value * 10 + Int(b[i] - UInt8(ascii: "0"))
                    digits += 1
                    i += 1
                }
                guard digits >= 1, digits <= 3 else { return nil }
                if field == 0 {
                    numbers.0 = value
                    guard i < b.count, b[i] == UInt8(ascii: ".") else { return nil }
                    i += 1
                } else {
                    numbers.1 = value
                }
            }
            // The code is the whole first word.
            guard i == b.count || b[i] == UInt8(ascii: " ") else { return nil }
            return EnhancedStatus(klass, numbers.0, numbers.1)
        }
    }

    /// The enhanced status code (RFC 3463) the first line starts with, if any.
    public var enhancedStatus: String? {
        guard let first = lines.first?.split(separator: " ", maxSplits: 1).first else { return nil }
        let parts = first.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let c = parts[0].first, "245".contains(c), parts[0].count == 1,
              parts.dropFirst().allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }) else { return nil }
        return String(first)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A reply stream that is not SMTP.
public struct ReplySyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public struct ReplyParser: Sendable {
    /// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; servers send longer text).
    public static let maxLineLength = 4096
    /// Most lines in one reply (EHLO replies are the longest real ones).
    public static let maxLines = 512

    private var buffer: [UInt8] = []
    /// Where the bytes not yet cut into lines begin (consumed bytes are dropped in bulk).
    private var start = 0
    private var scanned = 0
    private var pendingCode: Int?
    private var pendingLines: [String] = []
    /// The lines of the last few one-line replies: a relay says the same few texts again
    /// and again ("250 2.1.0 Ok", "354 End data…"), and then the same array serves (no
    /// string, no array built).
    private var recentLines: [(bytes: [UInt8], lines: [String])] = []
    private var nextRecent = 0
    static let recentCount = 4

    public init() {}

    /// Bytes received and not yet part of a whole reply.
    public var bufferedCount: Int { buffer.count - start }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }
    public mutating func feed(_ bytes: [UInt8]) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Drops the bytes already cut into lines.
    private mutating func compact() {
        guard start > 0 else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else {
            buffer.removeSubrange(0..<start)
        }
        scanned -= start
        start = 0
    }

    /// The next whole reply, or nil when more bytes are needed.
    public mutating func next() throws(ReplySyntaxError) -> SMTPReply? {
        while true {
            guard let lf = buffer[max(scanned, start)...].firstIndex(of: 10) else {
                scanned = buffer.count
                if buffer.count - start > ReplyParser.maxLineLength {
                    throw ReplySyntaxError(message: "reply line longer than \(ReplyParser.maxLineLength) bytes")
                }
                return nil
            }
            var end = lf
            if end > start && buffer[end - 1] == 13 { end -= 1 }
            let line = buffer[start..<end]
            start = lf + 1
            scanned = start
            if line.count > ReplyParser.maxLineLength {
                throw ReplySyntaxError(message: "reply line longer than \(ReplyParser.maxLineLength) bytes")
            }
            guard line.count >= 3, line.prefix(3).allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let first = line.first, first >= UInt8(ascii: "2"), first <= UInt8(ascii: "5") else {
                throw ReplySyntaxError(message: "not an SMTP reply: '\(String.printable(line.prefix(60)))'")
            }
            let code = Int(line[line.startIndex]  - 48) * 100 + Int(line[line.startIndex + 1] - 48) * 10 + Int(line[line.startIndex + 2] - 48)
            let separator: UInt8 = line.count > 3 ? line[line.startIndex + 3] : UInt8(ascii: " ")
            guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else {
                throw ReplySyntaxError(message: "not an SMTP reply: '\(String.printable(line.prefix(60)))'")
            }
            if let pendingCode, pendingCode != code {
                throw ReplySyntaxError(message: "reply lines with different codes (\(pendingCode) then \(code))")
            }
            let textBytes = line.dropFirst(min(4, line.count))
            if separator == UInt8(ascii: " ") && pendingCode == nil {
                // A one-line reply (nearly all): no list of lines to gather.
                return SMTPReply(code: code, lines: linesFor(textBytes))
            }
            let text = String.printable(textBytes)
            pendingCode = code
            pendingLines.append(text)
            if pendingLines.count > ReplyParser.maxLines {
                throw ReplySyntaxError(message: "reply longer than \(ReplyParser.maxLines) lines")
            }
            if separator == UInt8(ascii: " ") {
                let reply = SMTPReply(code: code, lines: pendingLines)
                self.pendingCode = nil
                pendingLines = []
                return reply
            }
        }
    }
}

extension ReplyParser {
    /// `[text]` for a one-line reply, from the recent ones when the text is the same.
    private mutating func linesFor(_ bytes: ArraySlice<UInt8>) -> [String] {
        for recent in recentLines where recent.bytes.count == bytes.count {
            let same = bytes.isEmpty || recent.bytes.withUnsafeBufferPointer { a in
                bytes.withUnsafeBufferPointer { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
            }
            if same { return recent.lines }
        }
        let lines = [String.printable(bytes)]
        if recentLines.count < ReplyParser.recentCount {
            recentLines.append((Array(bytes), lines))
        } else {
            recentLines[nextRecent] = (Array(bytes), lines)
            nextRecent = (nextRecent + 1) % ReplyParser.recentCount
        }
        return lines
    }
}

extension String {
    /// Text from the wire made safe for logs: control bytes shown as `?`.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        if !bytes.contains(where: { $0 < 32 || $0 == 127 }) { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes.map { $0 < 32 || $0 == 127 ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }
}
