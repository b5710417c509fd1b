// Permanent failures become one RFC 3464 DSN per job transaction and attempt, spooled as
// a new job in the default pool with the null sender before the recipients are crossed
// off. A null-sender message is never bounced (no loops); its failures are only logged.
// Each recipient's Status is its outcome's typed status; Remote-MTA names the relay
// by host name (a `dns` value carries no port).

import Foundation
import SMTPClient
import SpoolKit

/// The recipients of one message that failed for good, to be reported together: those of
/// one transaction of a plain job, or one row of a mail-merge job.
struct Bounce: Sendable {
    struct Failure: Sendable {
        var key: RecipientKey
        var recipient: Recipient
        var outcome: RecipientOutcome
    }
    /// Where the original message's header section comes from.
    enum Headers: Sendable {
        /// A transaction's message in a job file.
        case transaction(path: String, Transaction)
        /// A rendered message (dot-stuffing undone, CRLF).
        case message([UInt8])
    }
    /// The envelope sender the DSN goes to (empty: the null sender, never bounced).
    var sender: String
    var headers: Headers
    /// The job file: its time of arrival is the DSN's Arrival-Date.
    var arrival: String
    var failures: [Failure]
    /// The relay that answered (its host name), nil for failures decided here.
    var relay: String?

    /// Is the failed message a Distribute share message (X-Poold-Share-Version)?
    var isShareMessage: Bool {
        guard case .transaction(let path, let tx) = headers else { return false }
        return Distribution.isShareMessage(path: path, transaction: tx)
    }
}

struct BounceReport: Sendable {
    let spool: Spool
    let reportingMTA: String
    /// Tells the daemon's index about the new job (a drain has no watcher).
    let spooled: @Sendable (JobName, Int64) -> Void

    /// Spools the DSN for `bounce`; when this returns, it is on disk.
    func spool(_ bounce: Bounce, job: JobName) throws {
        let sender = bounce.sender
        for failure in bounce.failures {
            Log.warning("job=\(job) failed recipient=<\(failure.recipient.address)> sender=<\(sender)>\(bounce.relay.map { " relay=\($0)" } ?? "") status=\(failure.outcome.status) reply=\"\(failure.outcome.diagnostic)\"")
        }
        guard !sender.isEmpty else {
            Log.info("job=\(job): null sender, no delivery status notification")
            return
        }
        let arrival = (try? FileSystem.status(bounce.arrival)).map { Date(timeIntervalSince1970: $0.modified) } ?? Date()
        let recipients = bounce.failures.map { failure in
            FailedRecipient(
                address: failure.recipient.address,
                originalRecipient: failure.recipient.parameters.first { $0.uppercased().hasPrefix("ORCPT=") }.map { String($0.dropFirst(6)) },
                status: failure.outcome.status.description,
                diagnostic: failure.outcome.reply.map { "smtp; \($0)" } ?? "x-poold; \(failure.outcome.diagnostic)",
                remoteMTA: failure.outcome.reply == nil ? nil : bounce.relay)
        }
        let headers: [UInt8]
        switch bounce.headers {
        case .transaction(let path, let tx): headers = (try? DeliveryStatusNotification.headers(path: path, transaction: tx)) ?? []
        case .message(let bytes): headers = DeliveryStatusNotification.headers(of: bytes)
        }
        let dsn = DeliveryStatusNotification(reportingMTA: reportingMTA, sender: sender, arrivalDate: arrival,
                                             recipients: recipients, originalHeaders: headers)
        let bytes = JobWriter.bsmtp(message: dsn.message(), from: "", to: [sender])
        let name = try JobWriter.submit(bytes, pool: .default, spool: spool)
        Log.notice("job=\(job): delivery status notification \(name) to <\(sender)> for \(bounce.failures.count) recipient(s)")
        spooled(name, Int64(bytes.count))
    }
}
