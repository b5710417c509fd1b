// One worker's slice of a mail-merge pass, as a value: it reads the slice's rows from the
// job file (from the nearest indexed row), skips those already decided, renders each row
// into its own message and hands it out as one transaction; each row's result becomes
// spool effects like a plain job's recipients: delivered and deferred rows journaled,
// a failed row bounced with a DSN to the row's rendered sender (so VERP senders get a
// bounce per recipient), a row the connection failed sent again at once (once).
// A row's rendered message is kept only while its transaction is in flight.

import SMTPClient
import SpoolKit

extension RenderedMessage: MessageSource {}

struct SliceAttempt {
    /// The slice's queue entry (its job's name, with the slice's index).
    let job: QueuedJob
    let run: MergeRun
    let index: Int
    private let rows: MergeRowReader?
    private var renderer: MergeRenderer
    private var row = MergeRow()
    /// The next table row to look at, and the end of the slice.
    private var cursor: Int
    private let end: Int
    private var again = FIFO<Int>()
    private var inFlight: [Int: RenderedMessage] = [:]
    private var retried: Set<Int> = []
    private var stopped = false
    /// Why the slice's rows could not be read (the file changed): the rest waits.
    private(set) var broken: String?
    private(set) var counters = AttemptCounters()

    init(job: QueuedJob, run: MergeRun, index: Int, heloName: String, clock: WallClock) {
        self.job = job
        self.run = run
        self.index = index
        let range = run.slices[index]
        cursor = range.lowerBound
        end = range.upperBound
        renderer = MergeRenderer(job: run.merge, name: run.job.name, heloName: heloName, clock: clock.now)
        do {
            let reader = try MergeRowReader(path: run.path, job: run.merge)
            try reader.seek(toIndex: range.lowerBound)
            rows = reader
        } catch {
            rows = nil
            broken = "cannot read the rows of \(run.path): \(error)"
        }
    }

    var hasMore: Bool { !stopped && broken == nil && (!again.isEmpty || cursor < end) }
    var isSettled: Bool { inFlight.isEmpty && !hasMore }

    mutating func stop() { stopped = true }

    /// The next row's transaction: its row index, envelope and rendered message.
    mutating func next() -> (part: Int, envelope: Envelope, message: RenderedMessage)? {
        guard !stopped else { return nil }
        if let r = again.popFirst(), let message = inFlight[r] {
            return (r, envelope(message), message)
        }
        guard let rows else { return nil }
        while cursor < end {
            let at = rows.position
            do {
                guard try rows.next(into: &row) else { break }
            } catch {
                broken = "row \(at + 1) of \(run.path) cannot be read: \(error)"
                return nil
            }
            cursor = rows.position
            if run.isDecided(at) { continue }
            var message = RenderedMessage()
            do {
                try renderer.render(row, into: &message)
            } catch {
                broken = "row \(at + 1) of \(run.path) cannot be rendered (the file changed?): \(error)"
                return nil
            }
            inFlight[at] = message
            return (at, envelope(message), message)
        }
        return nil
    }

    private func envelope(_ message: RenderedMessage) -> Envelope {
        Envelope(sender: message.sender, senderParameters: run.merge.senderParameters,
                 recipients: [EnvelopeRecipient(address: message.recipient)])
    }

    /// The unsent rows wait for the retry schedule: they stay undecided in the journal.
    mutating func deferUnsent(_ outcome: RecipientOutcome) {
        stopped = true
        broken = broken ?? outcome.diagnostic
    }

    /// One row's result turned into spool effects.
    mutating func record(_ result: TransactionResult, part r: Int, worker: Int, relay: String) -> [SpoolEffect] {
        guard let message = inFlight[r], let outcome = result.outcomes.first else { return [] }
        let key = RecipientKey(r, 0)
        if outcome.kind == .deferred, result.retry == .notSent || (result.retry == .newConnection && !retried.contains(r)) {
            if result.retry == .newConnection { retried.insert(r) }
            again.append(r)
            return []
        }
        inFlight[r] = nil
        let row = "job=\(run.job.name) row=\(message.rowNumber) worker=\(worker) relay=\(relay) rcpt=<\(message.recipient)>"
        switch outcome.kind {
        case .delivered:
            counters.delivered += 1
            counters.bytes += message.wireSize
            return [.journal([.init(.delivered, key, reply: "")])]
        case .failed:
            counters.failed += 1
            let failure = Bounce.Failure(key: key, recipient: Recipient(address: message.recipient), outcome: outcome)
            return [.bounce(Bounce(sender: message.sender, headers: .message(message.bytes), arrival: run.path,
                                   failures: [failure], relay: relay))]
        case .deferred, .tooMany:
            counters.deferred += 1
            return [.journal([.init(.deferred, key, reply: outcome.diagnostic)]),
                    .note(.info, "\(row) deferred reply=\"\(outcome.diagnostic)\"")]
        }
    }

    /// The DSN of a row could not be spooled: the row stays undecided and is tried again.
    mutating func bounceFailed(_ bounce: Bounce) {
        counters.failed -= bounce.failures.count
        counters.deferred += bounce.failures.count
    }

    /// How the slice ends: completed, or back to the queue with rows still to send.
    func conclusion() -> [SpoolEffect] {
        let completed = !(stopped && broken == nil && (cursor < end || !again.isEmpty))
        var effects: [SpoolEffect] = []
        if let broken { effects.append(.note(.error, "job=\(run.job.name) slice=\(index + 1)/\(run.slices.count): \(broken); its rows wait for the next pass")) }
        effects.append(.note(.info, "job=\(run.job.name) slice=\(index + 1)/\(run.slices.count) rows=\(run.slices[index].count) delivered=\(counters.delivered) deferred=\(counters.deferred) failed=\(counters.failed)\(completed ? "" : " (stopped: the rest goes back to the queue)")"))
        effects.append(.sliceEnd(completed: completed))
        return effects
    }
}
