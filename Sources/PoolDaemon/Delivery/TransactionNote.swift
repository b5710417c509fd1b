// The line each transaction leaves in the log (and in the worker's LOG_DIR file), written
// as bytes straight into the log line: no String is built for it on the sending path.

import SMTPClient
import SpoolKit

/// The facts of a transaction's log line, written straight into the line's bytes:
/// `job=A1.MAIL worker=1 tx=1/1 relay=h rcpts=1 accepted=1 deferred=0 failed=0 reply="250 2.0.0 Ok"`.
struct TransactionNote {
    var job: JobName
    var worker: Int
    /// 1-based, of `transactions`.
    var transaction: Int
    var transactions: Int
    /// 1-based, when MAXBSMTP split the transaction.
    var part: Int?
    var relay: String
    var recipients: Int
    var accepted: Int
    var deferred: Int
    var failed: Int
    /// Recipients sent again at once, and whether they never reached the relay (resent)
    /// rather than being turned away (retry).
    var again: Int
    var resent: Bool
    /// The outcome the line quotes: the first delivered recipient's, else the first one's.
    var reply: RecipientOutcome?

    func write(into line: inout LogLine) {
        line.append("job=" as StaticString)
        line.append(job.fileName)
        line.append(" worker=" as StaticString)
        line.append(worker)
        line.append(" tx=" as StaticString)
        line.append(transaction)
        line.append(byte: UInt8(ascii: "/"))
        line.append(transactions)
        if let part {
            line.append(" part=" as StaticString)
            line.append(part)
        }
        line.append(" relay=" as StaticString)
        line.append(relay)
        line.append(" rcpts=" as StaticString)
        line.append(recipients)
        line.append(" accepted=" as StaticString)
        line.append(accepted)
        line.append(" deferred=" as StaticString)
        line.append(deferred)
        line.append(" failed=" as StaticString)
        line.append(failed)
        if again > 0 {
            line.append(resent ? " resent=" as StaticString : " retry=" as StaticString)
            line.append(again)
        }
        line.append(" reply=\"" as StaticString)
        if let reply { line.append(diagnostic: reply) }
        line.append(byte: UInt8(ascii: "\""))
    }
}

extension LogLine {
    /// `outcome.diagnostic`, without building it for the common one-line reply.
    mutating func append(diagnostic outcome: RecipientOutcome) {
        guard case .reply(let reply, _) = outcome.origin, reply.lines.count == 1 else {
            return append(outcome.diagnostic)
        }
        // As `SMTPReply.description`: the code, then the text without its outer spaces.
        append(reply.code)
        var text = reply.lines[0]
        text.withUTF8 { bytes in
            var low = 0, high = bytes.count
            while low < high && bytes[low] == UInt8(ascii: " ") { low += 1 }
            while high > low && bytes[high - 1] == UInt8(ascii: " ") { high -= 1 }
            guard low < high else { return }
            append(byte: UInt8(ascii: " "))
            append(UnsafeBufferPointer(rebasing: bytes[low..<high]))
        }
    }
}
