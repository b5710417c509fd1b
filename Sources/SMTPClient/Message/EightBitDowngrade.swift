// 8-bit to 7-bit MIME conversion for a relay that does not offer 8BITMIME (RFC 6152 §3:
// such a message must be converted or refused), the way Postfix's smtp client does it
// (mime_state.c with MIME_OPT_DOWNGRADE), made a little more careful. Pure: bytes in,
// bytes or a typed failure out; no I/O, nothing wired into sending here.
//
// Input: a whole message, dot-stuffing undone, CRLF line ends (LF alone is tolerated and
// kept). Invariants of the output:
//   - every octet is below 128;
//   - only the bodies of leaf parts that hold 8-bit octets change: each becomes
//     quoted-printable (text/*, unless that would be over 1.5 times base64's size) or base64
//     (anything else, and message/global), with its Content-Transfer-Encoding updated or
//     added; every other byte (headers, boundaries, 7-bit parts, line ends) is copied;
//   - decoding a converted body gives back exactly its original octets;
//   - multipart/* is followed through its boundaries, nested to `maximumNesting`, and
//     message/rfc822 into the enclosed message; a multipart or message/rfc822 entity that
//     said 8bit or binary says 7bit afterwards;
//   - a message (top level or enclosed) without MIME-Version gets `MIME-Version: 1.0`
//     when anything in it is converted, and a message without Content-Type either also
//     gets `Content-Type: text/plain; charset=unknown-8bit` (RFC 1428's name for octets of
//     unknown charset, which sendmail adds too; Postfix converts only what declares 8bit
//     and adds nothing). Parts keep their declared (or default) Content-Type.
// Refused (DowngradeFailure, status 5.6.3 "conversion required but not supported"):
// 8-bit octets in any header field, in a message/* part other than rfc822 and global
// (RFC 2046 allows them no encoding), in a base64 body, or in a multipart's preamble or
// epilogue (nothing there can carry an encoding); a multipart without boundary holding
// 8-bit octets; nesting deeper than `maximumNesting`. A message that needs no conversion
// (`needsConversion` false) comes back unchanged.

public struct DowngradeFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        case eightBitHeader
        /// A message/* type (named) whose 8-bit content may not be re-encoded.
        case messagePartNotConvertible(String)
        case eightBitInBase64Body
        case eightBitOutsideParts
        case multipartWithoutBoundary
        case nestedTooDeep
    }

    public var reason: Reason
    /// The line of the message (1-based) where the problem is.
    public var line: Int

    /// RFC 3463: conversion required but not supported.
    public var status: String { "5.6.3" }

    public var description: String {
        let what: String
        switch reason {
        case .eightBitHeader: what = "8-bit octets in a header field"
        case .messagePartNotConvertible(let type): what = "8-bit octets in a \(type) part, which may not be encoded"
        case .eightBitInBase64Body: what = "8-bit octets in a base64 body"
        case .eightBitOutsideParts: what = "8-bit octets outside the parts of a multipart (preamble or epilogue)"
        case .multipartWithoutBoundary: what = "8-bit octets in a multipart without boundary"
        case .nestedTooDeep: what = "MIME nesting deeper than \(EightBitDowngrade.maximumNesting) levels"
        }
        return "\(status) cannot convert to 7-bit MIME for a relay without 8BITMIME: \(what) (line \(line))"
    }
}

public enum EightBitDowngrade {
    /// Like Postfix's mime_nesting_limit.
    public static let maximumNesting = 20

    /// Whether `message` holds any octet above 127.
    public static func needsConversion(_ message: some Collection<UInt8>) -> Bool {
        message.contains { $0 >= 0x80 }
    }

    /// `message` with every 8-bit leaf body re-encoded in 7 bits (see the file header).
    public static func convert(_ message: [UInt8]) -> Result<[UInt8], DowngradeFailure> {
        guard needsConversion(message) else { return .success(message) }
        var downgrade = Downgrade(message)
        do {
            try downgrade.entity(0..<downgrade.lines.count, default: .textPlain, depth: 0, isMessage: true, ownsEnd: true)
        } catch {
            return .failure(error)
        }
        return .success(downgrade.out)
    }
}

/// One pass over the message's lines, writing `out`.
private struct Downgrade {
    let bytes: [UInt8]
    let lines: [MIME.Line]
    var out: [UInt8] = []

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        lines = MIME.Line.split(bytes)
        out.reserveCapacity(bytes.count + bytes.count / 4)
    }

    func failure(_ reason: DowngradeFailure.Reason, at line: Int) -> DowngradeFailure {
        DowngradeFailure(reason: reason, line: line + 1)
    }

    func hasEightBit(_ range: Range<Int>) -> Bool {
        guard let first = range.first, let last = range.last else { return false }
        return bytes[lines[first].start..<lines[last].end].contains { $0 >= 0x80 }
    }

    func firstEightBitLine(_ range: Range<Int>) -> Int {
        range.first { bytes[lines[$0].start..<lines[$0].end].contains { $0 >= 0x80 } } ?? range.lowerBound
    }

    mutating func copy(_ range: Range<Int>) {
        guard let first = range.first, let last = range.last else { return }
        out += bytes[lines[first].start..<lines[last].end]
    }

    /// An entity (a message, an enclosed message or a body part) over `range`. `ownsEnd`:
    /// its last line break is its own (the end of the message), not the one before the
    /// boundary delimiter that follows it.
    mutating func entity(_ range: Range<Int>, default defaultType: MIME.ContentType, depth: Int, isMessage: Bool, ownsEnd: Bool) throws(DowngradeFailure) {
        let header = MIME.EntityHeader(bytes, lines, in: range)
        if let line = header.eightBitLine { throw failure(.eightBitHeader, at: line) }
        let body = header.bodyStart..<range.upperBound
        guard hasEightBit(body) else { return copy(range) }
        guard depth < EightBitDowngrade.maximumNesting else { throw failure(.nestedTooDeep, at: range.lowerBound) }
        let typeField = header.field("content-type")
        let type = typeField.flatMap { MIME.ContentType($0.value) } ?? defaultType
        let encoding = MIME.TransferEncoding(header.field("content-transfer-encoding")?.value)
        let domain = encoding == .eightBit || encoding == .binary ? "7bit" : nil
        switch (type.type, type.subtype) {
        case ("multipart", _):
            guard let boundary = type.boundary, !boundary.isEmpty else {
                throw failure(.multipartWithoutBoundary, at: typeField?.lines.lowerBound ?? range.lowerBound)
            }
            writeHeader(header, encoding: domain, isMessage: isMessage, addType: false)
            try multipartBody(body, boundary: Array(boundary.utf8), digest: type.subtype == "digest", depth: depth, ownsEnd: ownsEnd)
        case ("message", "rfc822"):
            writeHeader(header, encoding: domain, isMessage: isMessage, addType: false)
            try entity(body, default: .textPlain, depth: depth + 1, isMessage: true, ownsEnd: ownsEnd)
        case ("message", "global"):
            try leaf(header, body, text: false, encoding: encoding, isMessage: isMessage, ownsEnd: ownsEnd)
        case ("message", let subtype):
            throw failure(.messagePartNotConvertible("message/\(subtype)"), at: firstEightBitLine(body))
        default:
            try leaf(header, body, text: type.type == "text", encoding: encoding, isMessage: isMessage, ownsEnd: ownsEnd)
        }
    }

    /// A multipart body: preamble, parts between delimiter lines, epilogue.
    mutating func multipartBody(_ body: Range<Int>, boundary: [UInt8], digest: Bool, depth: Int, ownsEnd: Bool) throws(DowngradeFailure) {
        let delimiter = [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundary
        var partStart: Int?
        var closed = false
        var outside = body.lowerBound  // first line of the preamble, or of the epilogue
        for index in body {
            let text = bytes[lines[index].start..<lines[index].contentEnd]
            guard !closed, text.starts(with: delimiter) else { continue }
            let rest = text.dropFirst(delimiter.count)
            let isClose = rest.starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")])
            guard isClose || rest.allSatisfy({ $0 == 32 || $0 == 9 }) else { continue }
            if let start = partStart {
                try entity(start..<index, default: digest ? .messageRFC822 : .textPlain, depth: depth + 1, isMessage: false, ownsEnd: false)
            } else {
                if hasEightBit(outside..<index) { throw failure(.eightBitOutsideParts, at: firstEightBitLine(outside..<index)) }
                copy(outside..<index)
            }
            copy(index..<index + 1)
            partStart = isClose ? nil : index + 1
            closed = isClose
            outside = index + 1
        }
        if let start = partStart {  // no close delimiter: the last part runs to the end
            try entity(start..<body.upperBound, default: digest ? .messageRFC822 : .textPlain, depth: depth + 1, isMessage: false, ownsEnd: ownsEnd)
        } else {
            let rest = outside..<body.upperBound
            if hasEightBit(rest) { throw failure(.eightBitOutsideParts, at: firstEightBitLine(rest)) }
            copy(rest)
        }
    }

    /// A leaf entity whose body holds 8-bit octets: re-encoded, its header updated.
    mutating func leaf(_ header: MIME.EntityHeader, _ body: Range<Int>, text: Bool, encoding: MIME.TransferEncoding,
                       isMessage: Bool, ownsEnd: Bool) throws(DowngradeFailure) {
        if encoding == .base64 { throw failure(.eightBitInBase64Body, at: firstEightBitLine(body)) }
        var textLines = body.map { (text: bytes[lines[$0].start..<lines[$0].contentEnd], terminated: lines[$0].hasTerminator) }
        var content = contentBytes(body, ownsEnd: ownsEnd)
        if encoding == .quotedPrintable {
            // Already quoted-printable, but with raw 8-bit octets: decode, encode again.
            (textLines, content) = MIME.QuotedPrintableDecoding.decode(textLines, ownsEnd: ownsEnd)
        }
        let lastTerminated = textLines.last?.terminated ?? false
        let base64Size = MIME.Base64Lines.encodedSize(content.count) + (lastTerminated ? 2 : 0)
        let quoted = text ? MIME.QuotedPrintable.encode(textLines) : nil
        if let quoted, quoted.count * 2 <= base64Size * 3 {  // "much bigger": over half again as big
            writeHeader(header, encoding: "quoted-printable", isMessage: isMessage, addType: true)
            out += quoted
        } else {
            writeHeader(header, encoding: "base64", isMessage: isMessage, addType: true)
            out += MIME.Base64Lines.encode(content[...])
            if lastTerminated { out += [13, 10] }
        }
    }

    /// The octets the body carries: its lines with their line breaks, except the last
    /// one's when it belongs to the boundary delimiter that follows (`ownsEnd` false).
    func contentBytes(_ body: Range<Int>, ownsEnd: Bool) -> [UInt8] {
        guard let first = body.first, let last = body.last else { return [] }
        return Array(bytes[lines[first].start..<(ownsEnd ? lines[last].end : lines[last].contentEnd)])
    }

    /// Copies the header, with Content-Transfer-Encoding set to `encoding` (replaced or
    /// added) and, for a message without MIME-Version, the fields MIME needs.
    mutating func writeHeader(_ header: MIME.EntityHeader, encoding: String?, isMessage: Bool, addType: Bool) {
        var added: [String] = []
        if isMessage && header.field("mime-version") == nil {
            added.append("MIME-Version: 1.0")
            if addType && header.field("content-type") == nil { added.append("Content-Type: text/plain; charset=unknown-8bit") }
        }
        var replaced = false
        for field in header.fields {
            if field.name == "content-transfer-encoding", let encoding {
                if !replaced { out += Array("Content-Transfer-Encoding: \(encoding)".utf8) + terminator(of: field.lines.lowerBound) }
                replaced = true
            } else {
                copy(field.lines)
            }
        }
        if let encoding, !replaced { added.append("Content-Transfer-Encoding: \(encoding)") }
        for line in added { out += Array(line.utf8) + [13, 10] }
        if let separator = header.separator {
            copy(separator..<separator + 1)
        } else if !added.isEmpty || replaced {
            out += [13, 10]  // the body started without an empty line: keep it out of the header
        }
    }

    func terminator(of line: Int) -> [UInt8] {
        let l = lines[line]
        return l.hasTerminator ? Array(bytes[l.contentEnd..<l.end]) : [13, 10]
    }
}

extension MIME {
    /// Lenient quoted-printable decoding of an existing body: "=XX" is the octet, "=" at
    /// the end of a line joins it to the next, anything else (raw 8-bit octets included)
    /// stands for itself. Gives the logical lines (with their hard line breaks) and the
    /// decoded octets; the last line break is left out of the octets unless `ownsEnd`.
    enum QuotedPrintableDecoding {
        static func decode(_ encoded: [(text: ArraySlice<UInt8>, terminated: Bool)], ownsEnd: Bool)
            -> (lines: [(text: ArraySlice<UInt8>, terminated: Bool)], octets: [UInt8]) {
            var lines: [(text: ArraySlice<UInt8>, terminated: Bool)] = []
            var current: [UInt8] = []
            for (index, line) in encoded.enumerated() {
                var text = line.text
                let soft = text.last == UInt8(ascii: "=")
                if soft { text = text.dropLast() }
                var i = text.startIndex
                while i < text.endIndex {
                    if text[i] == UInt8(ascii: "="), text.distance(from: i, to: text.endIndex) >= 3,
                       let high = hexValue(text[i + 1]), let low = hexValue(text[i + 2]) {
                        current.append(high << 4 | low)
                        i += 3
                    } else {
                        current.append(text[i])
                        i += 1
                    }
                }
                if soft && index < encoded.count - 1 { continue }
                lines.append((current[...], line.terminated && !soft))
                current = []
            }
            var octets: [UInt8] = []
            for line in lines {
                octets += line.text
                if line.terminated { octets += [13, 10] }
            }
            if !ownsEnd, lines.last?.terminated == true { octets.removeLast(2) }
            return (lines, octets)
        }

        static func hexValue(_ b: UInt8) -> UInt8? {
            switch b {
            case 48...57: return b - 48
            case 65...70: return b - 55
            case 97...102: return b - 87
            default: return nil
            }
        }
    }
}
