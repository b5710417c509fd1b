// One attempt at one job over one relay session: check the file whole, skip what the
// journal says is done, send the rest in transactions of at most MAXBSMTP recipients, and
// leave the job in exactly one of the states SpoolKit/README.md describes.
//
// The journal is written only when the job outlives a transaction: the decisions of a
// transaction are fsynced before the next transaction starts, and at the end either the
// job is removed (all decided) or its deferrals are recorded and it moves to `deferred/`.

import Foundation
import SMTPClient
import SpoolKit
import Synchronization

extension MessageReader: MessageSource {}

/// Where permanent failures go. The RFC 3464 DSN writer plugs in here; it must have the
/// notification safely spooled when `report` returns, because the recipients are crossed
/// off right after.
protocol FailureReport: Sendable {
    func report(job: JobName, path: String, transaction: Transaction, failures: [(Recipient, RecipientOutcome)], relay: String) throws
}

struct DeliverySettings: Sendable {
    var maxRecipients: Int
    var sort: RecipientSort
    var retrySchedule: [Double]
    var queueLifetime: Double
}

/// What an attempt did, for the worker's counters and the queue.
struct AttemptResult: Sendable {
    enum Disposition: Sendable { case finished, deferred(path: String, due: Double), quarantined, vanished, interrupted }
    var disposition: Disposition
    var delivered = 0
    var deferred = 0
    var failed = 0
    /// Message bytes (wire form) of the transactions a relay accepted.
    var bytes: Int64 = 0
}

struct JobDelivery {
    let spool: Spool
    let settings: DeliverySettings
    let failures: FailureReport
    let workerID: Int
    let limiter: RateLimiter
    /// The journals that exist on disk (listed at start, kept as they are made and removed).
    let journals: JournalRegistry
    let clock: @Sendable () -> Double
    /// LOG_DIR's file for this worker (nil without LOG_DIR).
    var log: WorkerLog? = nil

    /// A chunk of one transaction's recipients, with their indices in the job.
    private struct Chunk {
        var transaction: Int
        var members: [Int]
        /// Which MAXBSMTP part of its transaction, when MAXBSMTP split it.
        var part = 0
        var split = false
    }

    /// `shouldStop` is asked between transactions: the daemon stops, or the worker's window
    /// closed; the transaction in hand is always finished first. `completion` gets the
    /// result exactly once. With `overlap`, the job's last transaction may go by
    /// `sendOverlapped`: then `completion` runs later, when the relay has answered its final
    /// dot (during the worker's next transaction, or when it settles its session).
    func attempt(_ job: QueuedJob, session: SMTPSession, reconnect: () -> Bool, shouldStop: () -> Bool,
                 overlap: Bool = false, completion: @escaping (AttemptResult) -> Void) {
        let path = job.path
        let status: FileStatus
        do {
            status = try FileSystem.status(path)
        } catch {
            return completion(AttemptResult(disposition: .vanished))
        }
        let parsed: BSMTPJob
        let bytes: [UInt8]?
        do {
            (parsed, bytes) = try BSMTPReader.load(path: path)
        } catch let error as BSMTPError {
            return completion(quarantine(job, reason: error.description))
        } catch {
            if (error as? SystemError)?.isNotFound == true { return completion(AttemptResult(disposition: .vanished)) }
            Log.error("\(job.name): cannot read: \(error); will try again")
            return completion(AttemptResult(disposition: .deferred(path: path, due: clock() + settings.retrySchedule[0])))
        }
        var journal: Journal
        let journalPath = spool.journalPath(for: job.name.fileName, inode: status.inode)
        do {
            // Most jobs have none: look on disk only for journals the daemon knows exist.
            journal = journals.contains(journalPath) ? try Journal(path: journalPath) : Journal(absentAt: journalPath)
        } catch {
            Log.error("\(job.name): cannot read its journal: \(error); will try again")
            return completion(AttemptResult(disposition: .deferred(path: path, due: clock() + settings.retrySchedule[0])))
        }

        var result = AttemptResult(disposition: .finished)
        var pending: [Journal.Record] = []       // decisions not yet on disk
        var deferredNow: [RecipientKey: String] = [:]
        var chunks = plan(parsed, journal: journal)
        var interrupted = false
        let now = clock()
        let expired = journal.firstAttempt.map { now - $0 > settings.queueLifetime } ?? false

        /// Takes one transaction's outcomes: decisions, deferrals, DSNs, 452 retries, the log line.
        func absorb(_ chunk: Chunk, _ tx: Transaction, _ outcomes: [RecipientOutcome]) {
            var accepted = 0, deferred = 0, failed = 0
            var retry: [Int] = []
            var failures: [(Recipient, RecipientOutcome)] = []
            var failedKeys: [RecipientKey] = []
            for (i, outcome) in zip(chunk.members, outcomes) {
                let key = RecipientKey(chunk.transaction, i)
                switch outcome.kind {
                case .delivered:
                    accepted += 1
                    pending.append(.init(.delivered, key, reply: outcome.diagnostic))
                case .failed:
                    failed += 1
                    failures.append((tx.recipients[i], outcome))
                    failedKeys.append(key)
                case .deferred:
                    deferred += 1
                    deferredNow[key] = outcome.diagnostic
                case .tooMany:
                    retry.append(i)
                }
            }
            if !retry.isEmpty {
                if accepted + failed > 0 {
                    chunks.insert(Chunk(transaction: chunk.transaction, members: retry, part: chunk.part, split: chunk.split), at: c)
                } else {
                    // The relay took nobody: waiting is better than asking again at once.
                    for i in retry { deferredNow[RecipientKey(chunk.transaction, i)] = outcomes[chunk.members.firstIndex(of: i)!].diagnostic }
                    deferred += retry.count
                }
            }
            if !failures.isEmpty {
                do {
                    try self.failures.report(job: job.name, path: path, transaction: tx, failures: failures, relay: session.peer)
                    for (key, (_, outcome)) in zip(failedKeys, failures) { pending.append(.init(.failed, key, reply: outcome.diagnostic)) }
                } catch {
                    // Not crossed off: they stay deferred and are reported again next time.
                    Log.error("\(job.name): cannot spool the delivery status notification: \(error)")
                    for (key, (_, outcome)) in zip(failedKeys, failures) { deferredNow[key] = outcome.diagnostic }
                }
            }
            result.delivered += accepted
            result.deferred += deferred
            result.failed += failed
            if accepted > 0 { result.bytes += tx.wireSize }
            let reply = outcomes.first { $0.kind == .delivered }?.diagnostic ?? outcomes.first?.diagnostic ?? ""
            let line = "job=\(job.name) worker=\(workerID) tx=\(chunk.transaction + 1)/\(parsed.transactions.count)\(chunk.split ? " part=\(chunk.part + 1)" : "") relay=\(session.peer) rcpts=\(chunk.members.count) accepted=\(accepted) deferred=\(deferred) failed=\(failed) retry=\(retry.count) reply=\"\(reply)\""
            Log.info(line)
            log?.write(line)
        }

        /// The end of the attempt: the job leaves the spool, or waits in deferred/, or goes back.
        func conclude() -> AttemptResult {
            // A journal written during this attempt must be found by the next one.
            if journal.exists { journals.insert(journalPath) }
            if interrupted {
                try? journal.append(pending)
                if journal.exists { journals.insert(journalPath) }
                result.disposition = .interrupted
                return result
            }
            if deferredNow.isEmpty {
                // Everything is decided: the job leaves the spool; its journal after it.
                do {
                    try spool.finish(path: path, journal: journal.exists ? journalPath : nil)
                    journals.remove(journalPath)
                } catch {
                    try? journal.append(pending)
                    if journal.exists { journals.insert(journalPath) }
                    Log.error("\(job.name): delivered but cannot remove the job file: \(error)")
                    result.disposition = .interrupted
                }
                return result
            }
            if expired {
                Log.warning("\(job.name): \(deferredNow.count) recipient(s) deferred past QUEUE_LIFETIME; failing them")
                // The DSN path treats them as failed with their last reply.
                var failures: [Int: [(Recipient, RecipientOutcome)]] = [:]
                for (key, reply) in deferredNow {
                    let outcome = RecipientOutcome(.failed, reason: "delivery time expired; last reply: \(reply)")
                    failures[key.transaction, default: []].append((parsed.transactions[key.transaction].recipients[key.recipient], outcome))
                }
                do {
                    for (t, list) in failures {
                        try self.failures.report(job: job.name, path: path, transaction: parsed.transactions[t], failures: list, relay: session.peer)
                    }
                    try spool.finish(path: path, journal: journal.exists ? journalPath : nil)
                    journals.remove(journalPath)
                    result.failed += deferredNow.count
                    result.deferred -= deferredNow.count
                    return result
                } catch {
                    Log.error("\(job.name): cannot fail expired recipients: \(error)")
                }
            }
            // Some recipients wait for a retry.
            let due = now + settings.retrySchedule[min(journal.attempts, settings.retrySchedule.count - 1)]
            do {
                try journal.append(pending + deferredNow.sorted { $0.key < $1.key }.map { .init(.deferred, $0.key, reply: $0.value) })
                try journal.recordAttempt(at: now, next: due)
                journals.insert(journalPath)
                let newPath = try spool.moveToDeferred(path: path, name: job.name.fileName)
                result.disposition = .deferred(path: newPath, due: due)
            } catch {
                Log.error("\(job.name): cannot record its deferral: \(error)")
                result.disposition = .deferred(path: path, due: due)
            }
            return result
        }

        var c = 0
        while c < chunks.count {
            let chunk = chunks[c]
            c += 1
            // Decisions of the previous transaction go to disk before the next one starts.
            if !pending.isEmpty {
                do {
                    try journal.append(pending)
                    pending.removeAll()
                } catch {
                    Log.error("\(job.name): cannot write its journal: \(error); stopping this attempt")
                    interrupted = true
                    break
                }
            }
            if shouldStop() { interrupted = true; break }
            if !session.isOpen && !reconnect() {
                for i in chunk.members { deferredNow[RecipientKey(chunk.transaction, i)] = "relay \(session.host):\(session.port) unreachable" }
                continue
            }
            let tx = parsed.transactions[chunk.transaction]
            let envelope = Envelope(
                sender: tx.sender, senderParameters: tx.senderParameters,
                recipients: chunk.members.map { EnvelopeRecipient(address: tx.recipients[$0].address, parameters: tx.recipients[$0].parameters) })
            let reader = MessageReader(path: path, transaction: tx, bytes: bytes)
            if limiter.isActive {
                // The envelope's commands count too (roughly: each line as written).
                limiter.charge(envelope.recipients.reduce(tx.sender.utf8.count + 40) { $0 + $1.address.utf8.count + 14 }, pool: job.name.pool)
                absorb(chunk, tx, session.send(envelope, message: ThrottledMessage(reader: reader, limiter: limiter, pool: job.name.pool)))
            } else if overlap && c == chunks.count && session.canOverlap(reader) {
                // The last transaction: its final dot goes with the next job's envelope.
                session.sendOverlapped(envelope, message: reader) { outcomes in
                    absorb(chunk, tx, outcomes)
                    // A 452 left recipients for another transaction: the job goes back to
                    // the front of the queue with its decisions journaled, and is taken again.
                    if c < chunks.count { interrupted = true }
                    completion(conclude())
                }
                return
            } else {
                absorb(chunk, tx, session.send(envelope, message: reader))
            }
        }
        completion(conclude())
    }

    private func quarantine(_ job: QueuedJob, reason: String) -> AttemptResult {
        do {
            try spool.quarantine(path: job.path, name: job.name.fileName, reason: "\(job.name.fileName): \(reason)")
            Log.error("\(job.name): not valid BSMTP, moved to bad/: \(reason)")
        } catch {
            Log.error("\(job.name): not valid BSMTP (\(reason)) and cannot be moved to bad/: \(error)")
        }
        return AttemptResult(disposition: .quarantined)
    }

    /// The transactions still to send, split at MAXBSMTP recipients and sorted as asked.
    private func plan(_ job: BSMTPJob, journal: Journal) -> [Chunk] {
        var chunks: [Chunk] = []
        for tx in job.transactions {
            var members = tx.recipients.indices.filter { journal.decided[RecipientKey(tx.index, $0)] == nil }
            if members.isEmpty { continue }
            let sortNow = settings.sort == .byDomain
                || (settings.sort == .byDomainWhenSplit && tx.recipients.count > settings.maxRecipients)
            if sortNow {
                let domains = members.map { tx.recipients[$0].domain }
                members = zip(members, domains).enumerated()
                    .sorted { ($0.element.1, $0.offset) < ($1.element.1, $1.offset) }
                    .map { $0.element.0 }
            }
            var start = 0
            var part = 0
            while start < members.count {
                let end = min(start + settings.maxRecipients, members.count)
                chunks.append(Chunk(transaction: tx.index, members: Array(members[start..<end]), part: part,
                                    split: members.count > settings.maxRecipients))
                start = end
                part += 1
            }
        }
        return chunks
    }
}

/// The journal files that exist, so that a job without one (nearly all) costs no failed
/// open(2). Filled from a listing of `.state/` at start; kept by the workers after that.
final class JournalRegistry: Sendable {
    private let paths: Mutex<Set<String>>
    init(_ initial: Set<String>) { paths = Mutex(initial) }
    func contains(_ path: String) -> Bool { paths.withLock { $0.contains(path) } }
    func insert(_ path: String) { _ = paths.withLock { $0.insert(path) } }
    func remove(_ path: String) { _ = paths.withLock { $0.remove(path) } }
}
