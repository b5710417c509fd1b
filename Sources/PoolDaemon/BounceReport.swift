// Permanent failures become one RFC 3464 DSN per job transaction and attempt, spooled as
// a new job in the default pool with the null sender before the recipients are crossed
// off. A null-sender message is never bounced (no loops); its failures are only logged.

import Foundation
import SMTPClient
import SpoolKit

struct BounceReport: FailureReport {
    let spool: Spool
    let reportingMTA: String
    /// Tells the daemon's index about the new job (a drain has no watcher).
    let spooled: @Sendable (JobName, String, Int64) -> Void

    func report(job: JobName, path: String, transaction: Transaction, failures: [(Recipient, RecipientOutcome)], relay: String) throws {
        for (recipient, outcome) in failures {
            Log.warning("job=\(job) failed recipient=<\(recipient.address)> sender=<\(transaction.sender)> relay=\(relay) reply=\"\(outcome.diagnostic)\"")
        }
        guard !transaction.isNullSender else {
            Log.info("job=\(job): null sender, no delivery status notification")
            return
        }
        let arrival = (try? FileSystem.status(path)).map { Date(timeIntervalSince1970: $0.modified) } ?? Date()
        let recipients = failures.map { recipient, outcome in
            FailedRecipient(
                address: recipient.address,
                originalRecipient: recipient.parameters.first { $0.uppercased().hasPrefix("ORCPT=") }.map { String($0.dropFirst(6)) },
                status: BounceReport.status(of: outcome),
                diagnostic: outcome.reply.map { "smtp; \($0)" } ?? "x-poold; \(outcome.diagnostic)",
                remoteMTA: outcome.reply == nil ? nil : relay)
        }
        let headers = (try? DeliveryStatusNotification.headers(path: path, transaction: transaction)) ?? []
        let dsn = DeliveryStatusNotification(reportingMTA: reportingMTA, sender: transaction.sender, arrivalDate: arrival,
                                             recipients: recipients, originalHeaders: headers)
        let bytes = JobWriter.bsmtp(message: dsn.message(), from: "", to: [transaction.sender])
        let name = try JobWriter.submit(bytes, pool: .default, spool: spool)
        Log.notice("job=\(job): delivery status notification \(name) to <\(transaction.sender)> for \(failures.count) recipient(s)")
        spooled(name, spool.root + "/" + name.fileName, Int64(bytes.count))
    }

    static func status(of outcome: RecipientOutcome) -> String {
        if let s = outcome.reply?.enhancedStatus, s.hasPrefix("5") { return s }
        if outcome.reply == nil && outcome.diagnostic.hasPrefix("delivery time expired") { return "4.4.7" }
        if outcome.diagnostic.hasPrefix("552 5.3.4") { return "5.3.4" }
        return "5.0.0"
    }
}
