// What a job attempt is planned in and counts: the delivery settings it follows, the
// parts (MAXBSMTP pieces of a job transaction) it sends, the counters it reports.

import SpoolKit

/// The settings every attempt follows (MAXBSMTP, SORT, RETRY_SCHEDULE, QUEUE_LIFETIME).
struct DeliverySettings: Sendable {
    var maxRecipients: Int
    var sort: RecipientSort
    var retrySchedule: [Double]
    var queueLifetime: Double
}

/// Recipients of one job transaction that go in one SMTP transaction.
struct Part: Sendable {
    var transaction: Int
    /// Recipient indices in the transaction.
    var members: [Int]
    /// Which MAXBSMTP part, and whether MAXBSMTP split the transaction at all.
    var number: Int
    var split: Bool
    /// A connection already failed this part once: the next failure defers it.
    var retried = false
}

/// What an attempt did, for the worker's counters.
struct AttemptCounters: Sendable {
    var delivered = 0
    var deferred = 0
    var failed = 0
    /// Message bytes (wire form) of the transactions a relay accepted.
    var bytes: Int64 = 0
}
