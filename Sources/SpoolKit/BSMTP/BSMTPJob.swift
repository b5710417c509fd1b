// What a job file holds once read: its transactions (envelope plus where the message
// lies in the file), and what is wrong with a file that is not valid BSMTP. The message
// itself is never held in memory; `MessageReader` streams it from the file when sent.

public struct Recipient: Hashable, Sendable {
    /// The address between the angle brackets.
    public var address: String
    /// ESMTP parameters as written (`NOTIFY=FAILURE`, `ORCPT=rfc822;x@y`).
    public var parameters: [String]

    public init(address: String, parameters: [String] = []) {
        self.address = address
        self.parameters = parameters
    }

    /// The domain (after the last `@`), lower-cased; empty for `postmaster`.
    public var domain: String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return address[address.index(after: at)...].lowercased()
    }
}

public struct Transaction: Sendable {
    /// 0-based position in the job.
    public var index: Int
    /// The line of its `MAIL FROM`.
    public var line: Int
    /// The envelope sender, empty for the null sender `<>`.
    public var sender: String
    public var senderParameters: [String]
    public var recipients: [Recipient]
    /// File offsets of the message: the first byte of its first line, and the first byte
    /// of the terminating `.` line.
    public var messageStart: Int64
    public var messageEnd: Int64
    /// The message's size on the wire: dot-stuffed as in the file, every line ending in CRLF,
    /// without the final `.` line.
    public var wireSize: Int64
    /// Message lines that start with a dot: each carries one stuffing dot that BDAT
    /// (RFC 3030), which sends the message as it is, leaves out.
    public var stuffedLines: Int64 = 0

    /// The message's size with dot-stuffing undone (what BDAT announces).
    public var unstuffedSize: Int64 { wireSize - stuffedLines }

    public var isNullSender: Bool { sender.isEmpty }
}

public struct BSMTPJob: Sendable {
    public var transactions: [Transaction]
    public var fileSize: Int64
    /// The argument of a leading HELO/EHLO line (nil without one). A Distribute share
    /// received by `poolctl receive` says `HELO poold-share <share id>` (`isShare`).
    public var hello: String? = nil
    public var recipientCount: Int { transactions.reduce(0) { $0 + $1.recipients.count } }
}

/// Why a file is not valid BSMTP, and where.
public struct BSMTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line number (the last line for faults found at the end of the file).
    public var line: Int
    public var message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}
