// Small things the interop tests share: one-recipient jobs in bulk, the DSNs poold left
// in the spool, poold's closing counts, and a reader for 7-bit MIME (quoted-printable
// and base64 bodies) to check what a relay without 8BITMIME received.

import Foundation
import XCTest
import SpoolKit

extension GeneratedJobs {
    /// `count` jobs `<pool>00000001.MAIL`…, one message and one recipient each.
    static func singles(count: Int, pool: Character = "A", label: String = "single") -> GeneratedJobs {
        var g = GeneratedJobs()
        for n in 1...count {
            let name = "\(pool)\(String(format: "%08d", n)).MAIL"
            let tag = "\(label)-\(n)"
            let message = Array("From: List <owner@lists.example.org>\r\nSubject: \(label) \(n)\r\nX-Test-Id: \(tag)\r\n\r\nHello, reader \(n).\r\n.a line that starts with a dot\r\n".utf8)
            let recipient = "reader\(n)@example.com"
            g.messages[tag] = message
            g.senders[tag] = "owner@lists.example.org"
            g.deliveries.append(Expected(tag: tag, recipient: recipient))
            g.files.append((name, JobWriter.bsmtp(message: message, from: "owner@lists.example.org", to: [recipient])))
        }
        return g
    }
}

/// Short deadlines: a mistake shows as a failure, not a stalled suite.
let interopTimeouts = ["SMTP_CONNECT_TIMEOUT=10s", "SMTP_GREETING_TIMEOUT=20s", "SMTP_COMMAND_TIMEOUT=20s"]

extension SpoolFixture {
    func drop(_ jobs: GeneratedJobs) throws {
        for file in jobs.files { try drop(file.name, file.bytes) }
    }

    /// The DSNs poold spooled (jobs of the default pool, which the tests' workers do not
    /// serve, so they stay in the spool to be read), as text.
    func spooledDSNs() -> [String] {
        jobsLeft().filter { $0.hasPrefix("-") }.map {
            (try? String(contentsOfFile: spoolDirectory + "/" + $0, encoding: .utf8)) ?? ""
        }
    }
}

/// poold's closing line, "poold stopped: D delivered, E deferred, F failed".
struct ClosingCounts: Equatable {
    var delivered: Int
    var deferred: Int
    var failed: Int

    init(delivered: Int, deferred: Int, failed: Int) {
        (self.delivered, self.deferred, self.failed) = (delivered, deferred, failed)
    }

    init?(log: String) {
        guard let line = log.split(separator: "\n").last(where: { $0.contains("poold stopped:") }) else { return nil }
        func number(before word: String) -> Int? {
            guard let range = line.range(of: " \(word)") else { return nil }
            return Int(line[..<range.lowerBound].split(separator: " ").last ?? "")
        }
        guard let d = number(before: "delivered"), let e = number(before: "deferred"), let f = number(before: "failed") else { return nil }
        (delivered, deferred, failed) = (d, e, f)
    }
}

/// A message split into header (with its final empty line) and body.
struct MessageParts {
    var header: [UInt8]
    var body: [UInt8]

    init(_ message: [UInt8]) {
        let end = TraceHeaders.fields(of: message).bodyStart
        let bodyStart = message[end...].starts(with: [13, 10]) ? end + 2 : min(end + 1, message.count)
        header = Array(message[..<bodyStart])
        body = Array(message[bodyStart...])
    }

    /// The value of a header field (first occurrence, unfolded, trimmed), nil when absent.
    func field(_ name: String) -> String? {
        let fields = TraceHeaders.fields(of: header + [13, 10]).fields
        guard let found = fields.first(where: { $0.name == name.lowercased() }) else { return nil }
        let raw = String(decoding: header[found.range], as: UTF8.self)
        let value = raw.drop { $0 != ":" }.dropFirst()
        return value.replacingOccurrences(of: "\r\n", with: "").trimmingCharacters(in: .whitespaces)
    }
}

/// Decoders for the two 7-bit transfer encodings (RFC 2045 §6.7, §6.8).
enum TransferDecoding {
    static func quotedPrintable(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 48...57: return b - 48
            case 65...70: return b - 55
            case 97...102: return b - 87
            default: return nil
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "=") {
                if i + 2 < bytes.count, bytes[i + 1] == 13, bytes[i + 2] == 10 { i += 3; continue }  // soft line break
                if i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) { out.append(h << 4 | l); i += 3; continue }
            }
            out.append(b)
            i += 1
        }
        return out
    }

    static func base64(_ bytes: [UInt8]) -> [UInt8] {
        let text = String(decoding: bytes.filter { $0 != 13 && $0 != 10 }, as: UTF8.self)
        return [UInt8](Data(base64Encoded: text) ?? Data())
    }

    /// The body decoded by its Content-Transfer-Encoding; nil for an unknown encoding.
    static func body(of parts: MessageParts) -> [UInt8]? {
        switch (parts.field("Content-Transfer-Encoding") ?? "7bit").lowercased() {
        case "quoted-printable": return quotedPrintable(parts.body)
        case "base64": return base64(parts.body)
        case "7bit", "8bit", "binary": return parts.body
        default: return nil
        }
    }
}
