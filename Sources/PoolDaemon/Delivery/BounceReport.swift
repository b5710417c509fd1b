// Permanent failures become one RFC 3464 DSN per job transaction and attempt, spooled as
// a new job in the default pool with the null sender before the recipients are crossed
// off. A null-sender message is never bounced (no loops); its failures are only logged.
// Each recipient's Status is its outcome's typed status; Remote-MTA names the relay
// by host name (a `dns` value carries no port).

import Foundation
import SMTPClient
import SpoolKit

/// The recipients of one job transaction that failed for good, to be reported together.
struct Bounce: Sendable {
    struct Failure: Sendable {
        var key: RecipientKey
        var recipient: Recipient
        var outcome: RecipientOutcome
    }
    var transaction: Transaction
    var failures: [Failure]
    /// The relay that answered (its host name), nil for failures decided here.
    var relay: String?
}

struct BounceReport: Sendable {
    let spool: Spool
    let reportingMTA: String
    /// Tells the daemon's index about the new job (a drain has no watcher).
    let spooled: @Sendable (JobName, Int64) -> Void

    /// Spools the DSN for `bounce` of the job at `path`; when this returns, it is on disk.
    func spool(_ bounce: Bounce, job: JobName, path: String) throws {
        let tx = bounce.transaction
        for failure in bounce.failures {
            Log.warning("job=\(job) failed recipient=<\(failure.recipient.address)> sender=<\(tx.sender)>\(bounce.relay.map { " relay=\($0)" } ?? "") status=\(failure.outcome.status) reply=\"\(failure.outcome.diagnostic)\"")
        }
        guard !tx.isNullSender else {
            Log.info("job=\(job): null sender, no delivery status notification")
            return
        }
        let arrival = (try? FileSystem.status(path)).map { Date(timeIntervalSince1970: $0.modified) } ?? Date()
        let recipients = bounce.failures.map { failure in
            FailedRecipient(
                address: failure.recipient.address,
                originalRecipient: failure.recipient.parameters.first { $0.uppercased().hasPrefix("ORCPT=") }.map { String($0.dropFirst(6)) },
                status: failure.outcome.status.description,
                diagnostic: failure.outcome.reply.map { "smtp; \($0)" } ?? "x-poold; \(failure.outcome.diagnostic)",
                remoteMTA: failure.outcome.reply == nil ? nil : bounce.relay)
        }
        let headers = (try? DeliveryStatusNotification.headers(path: path, transaction: tx)) ?? []
        let dsn = DeliveryStatusNotification(reportingMTA: reportingMTA, sender: tx.sender, arrivalDate: arrival,
                                             recipients: recipients, originalHeaders: headers)
        let bytes = JobWriter.bsmtp(message: dsn.message(), from: "", to: [tx.sender])
        let name = try JobWriter.submit(bytes, pool: .default, spool: spool)
        Log.notice("job=\(job): delivery status notification \(name) to <\(tx.sender)> for \(bounce.failures.count) recipient(s)")
        spooled(name, Int64(bytes.count))
    }
}
