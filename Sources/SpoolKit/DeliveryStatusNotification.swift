// RFC 3464 delivery status notifications: a `multipart/report; report-type=delivery-status`
// message with a human-readable part, a `message/delivery-status` part (Reporting-MTA,
// Arrival-Date; per recipient Final-Recipient, Action, Status, Remote-MTA,
// Diagnostic-Code) and the original message's headers. It goes back to the envelope
// sender as a new job with the null sender, so it can never bounce in turn.

import Foundation

public struct FailedRecipient: Sendable {
    public var address: String
    /// ORCPT (RFC 3461), when the job gave one.
    public var originalRecipient: String?
    /// RFC 3463 status, e.g. `5.1.1`.
    public var status: String
    /// What the relay said, or why we gave up (`smtp; 550 5.1.1 no such user`).
    public var diagnostic: String
    /// The relay that answered, when one did.
    public var remoteMTA: String?

    public init(address: String, originalRecipient: String?, status: String, diagnostic: String, remoteMTA: String?) {
        self.address = address
        self.originalRecipient = originalRecipient
        self.status = status
        self.diagnostic = diagnostic
        self.remoteMTA = remoteMTA
    }
}

public struct DeliveryStatusNotification: Sendable {
    public var reportingMTA: String
    public var sender: String
    public var arrivalDate: Date
    public var recipients: [FailedRecipient]
    /// The original message's header section, as stored (CRLF line ends, not stuffed).
    public var originalHeaders: [UInt8]
    public var now: Date

    public init(reportingMTA: String, sender: String, arrivalDate: Date, recipients: [FailedRecipient], originalHeaders: [UInt8], now: Date = Date()) {
        self.reportingMTA = reportingMTA
        self.sender = sender
        self.arrivalDate = arrivalDate
        self.recipients = recipients
        self.originalHeaders = originalHeaders
        self.now = now
    }

    /// The longest header section copied back (RFC 3462 allows headers only).
    public static let maxHeaderBytes = 64 * 1024

    public static func rfc5322Date(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return f.string(from: date)
    }

    /// The DSN as a message (CRLF line ends).
    public func message() -> [UInt8] {
        let boundary = "poold-dsn-\(UInt64(now.timeIntervalSince1970 * 1000))-\(UInt32.random(in: 0...UInt32.max))"
        let date = DeliveryStatusNotification.rfc5322Date(now)
        var lines: [String] = [
            "From: Mail Delivery System <MAILER-DAEMON@\(reportingMTA)>",
            "To: <\(sender)>",
            "Subject: Undelivered Mail Returned to Sender",
            "Date: \(date)",
            "Message-ID: <\(boundary)@\(reportingMTA)>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            "Content-Type: multipart/report; report-type=delivery-status;",
            "\tboundary=\"\(boundary)\"",
            "",
            "This is a MIME-encapsulated delivery status notification.",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=utf-8",
            "",
            "This is the mail system at \(reportingMTA).",
            "",
            "Your message could not be delivered to \(recipients.count == 1 ? "this recipient" : "these recipients"):",
            "",
        ]
        for r in recipients { lines.append("<\(r.address)>: \(r.diagnostic)") }
        lines += ["", "--\(boundary)", "Content-Type: message/delivery-status", "",
                  "Reporting-MTA: dns; \(reportingMTA)",
                  "Arrival-Date: \(DeliveryStatusNotification.rfc5322Date(arrivalDate))"]
        for r in recipients {
            lines.append("")
            lines.append("Final-Recipient: rfc822; \(r.address)")
            if let o = r.originalRecipient { lines.append("Original-Recipient: \(o)") }
            lines.append("Action: failed")
            lines.append("Status: \(r.status)")
            if let mta = r.remoteMTA { lines.append("Remote-MTA: dns; \(mta)") }
            lines.append("Diagnostic-Code: \(r.diagnostic)")
            lines.append("Last-Attempt-Date: \(date)")
        }
        lines += ["", "--\(boundary)", "Content-Type: text/rfc822-headers", ""]
        var out = Array(lines.joined(separator: "\r\n").utf8) + [13, 10]
        out += originalHeaders
        if !originalHeaders.isEmpty && originalHeaders.suffix(2) != [13, 10] { out += [13, 10] }
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }

    /// The header section of a message held in memory (dot-stuffing undone, CRLF), cut at
    /// the first empty line and at `maxHeaderBytes`.
    public static func headers(of message: [UInt8]) -> [UInt8] {
        var end = min(message.count, maxHeaderBytes)
        if let blank = message.prefix(end).firstRange(of: [13, 10, 13, 10]) { end = blank.lowerBound + 2 }
        return Array(message[..<end])
    }

    /// The header section of a transaction's message, dot-stuffing undone, CRLF line ends.
    public static func headers(path: String, transaction: Transaction) throws -> [UInt8] {
        var out: [UInt8] = []
        var done = false
        try MessageReader(path: path, transaction: transaction).stream { chunk in
            guard !done else { return }
            out += chunk
            if let end = out.firstRange(of: [13, 10, 13, 10]) {
                out.removeSubrange((end.lowerBound + 2)...)
                done = true
            } else if out.count > maxHeaderBytes {
                out.removeSubrange(maxHeaderBytes...)
                done = true
            }
        }
        // Undo dot-stuffing line by line.
        var result: [UInt8] = []
        var atLineStart = true
        for b in out {
            if atLineStart && b == UInt8(ascii: ".") { atLineStart = false; continue }
            result.append(b)
            atLineStart = b == 10
        }
        return result
    }
}
