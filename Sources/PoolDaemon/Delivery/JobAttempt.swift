// One attempt at one job, as a value: the job is read and checked whole, its transactions
// are planned in parts of at most MAXBSMTP recipients (skipping what the journal says is
// decided), each part goes out as one SMTP transaction, each transaction's result turns
// into spool effects (journal lines, a DSN to spool, a part to send again now), and the
// end of the attempt is one more effect: finish, defer or put back. The attempt does no
// I/O of its own: `SpoolExecutor` applies the effects, in order. The transaction that
// settles the whole job gets no journal lines: the finish (the job's line in the finished
// log) records it; they are journaled after all only if the job cannot leave.
//
// Retries inside an attempt: recipients a 452 turned away go in a new part at once; a
// part the connection failed (421, dropped before its message was out, a spent session)
// goes again at once on a new connection, once — a second failure in a row defers it;
// a part that never reached the relay goes again at no cost.

import SMTPClient
import SpoolKit

extension MessageReader: MessageSource {}

struct JobAttempt {
    let job: QueuedJob
    let path: String
    let content: BSMTPJob
    /// The whole file, when it was small enough to be read once.
    let bytes: [UInt8]?
    /// The job file as it was opened: its inode names the journal, and (inode, ctime) is
    /// what the finished log records (`FinishedLog`).
    let file: FileStatus
    let spool: Spool
    /// The journal: as it stands on disk, or nil while there is none (nearly every job);
    /// the executor creates it with the first lines it must keep.
    var journal: Journal?
    /// The decisions of the transaction that ended the attempt, not journaled because the
    /// job leaves the spool at once (`finish`); written after all if it cannot leave.
    private(set) var unjournaled: [(key: RecipientKey, outcome: RecipientOutcome)] = []
    /// When the attempt began (wall clock).
    let began: Double
    /// The job has waited past QUEUE_LIFETIME: what is deferred now fails.
    let expired: Bool
    let settings: DeliverySettings
    private(set) var parts: [Part]
    private var pending: FIFO<Int>
    /// Parts in flight (a few at most: a list, no hash table per job).
    private var inFlight: [Int] = []
    private var stopped = false
    /// Recipients deferred in this attempt, with their outcome.
    private(set) var deferrals: [RecipientKey: RecipientOutcome] = [:]
    private(set) var counters = AttemptCounters()

    /// `.state/<name>.<inode>.journal`, built when asked (most jobs never need it).
    var journalPath: String { journal?.path ?? spool.journalPath(for: job.name, inode: file.inode) }

    enum Opening {
        case ready(JobAttempt)
        /// A mail-merge job, checked whole: its rows go by slices (`MergeRun`).
        case merge(MergeJob, journalPath: String)
        /// Not valid BSMTP: the reason, with its line.
        case invalid(String)
        /// The file is gone (another process removed it).
        case vanished
        /// It cannot be read now (or its journal cannot): try again later, with this reason.
        case unreadable(String)
    }

    static func open(_ job: QueuedJob, spool: Spool, journals: JournalRegistry, settings: DeliverySettings, now: Double) -> Opening {
        let path = spool.path(of: job.name, in: job.place)
        let status: FileStatus
        let parsed: BSMTPJob
        let bytes: [UInt8]?
        do {
            // One open: the status (inode) and the bytes come from the same descriptor.
            let opened = try JobReader.open(path: path)
            status = opened.status
            switch opened.job {
            case .bsmtp(let job, let all): (parsed, bytes) = (job, all)
            case .merge(let merge): return .merge(merge, journalPath: spool.journalPath(for: job.name, inode: status.inode))
            }
        } catch let error as BSMTPError {
            return .invalid(error.description)
        } catch let error as MergeError {
            return .invalid(error.description)
        } catch let error as SystemError where error.isNotFound {
            return .vanished
        } catch {
            return .unreadable("cannot read \(path): \(error)")
        }
        var journal: Journal?
        if journals.mayHoldAny {
            // Most jobs have none: look on disk only for journals the daemon knows exist.
            let journalPath = spool.journalPath(for: job.name, inode: status.inode)
            if journals.contains(journalPath) {
                do {
                    journal = try Journal(path: journalPath)
                } catch {
                    // Without it the job would be sent again whole: better wait and say so.
                    return .unreadable("cannot read its journal \(journalPath): \(error)")
                }
            }
        }
        let expired = journal?.firstAttempt.map { now - $0 > settings.queueLifetime } ?? false
        return .ready(JobAttempt(job: job, path: path, content: parsed, bytes: bytes, file: status, spool: spool,
                                 journal: journal, began: now, expired: expired, settings: settings))
    }

    private init(job: QueuedJob, path: String, content: BSMTPJob, bytes: [UInt8]?, file: FileStatus, spool: Spool,
                 journal: Journal?, began: Double, expired: Bool, settings: DeliverySettings) {
        self.job = job
        self.path = path
        self.content = content
        self.bytes = bytes
        self.file = file
        self.spool = spool
        self.journal = journal
        self.began = began
        self.expired = expired
        self.settings = settings
        parts = JobAttempt.plan(content, journal: journal, settings: settings)
        pending = FIFO()
        for p in parts.indices { pending.append(p) }
    }

    /// Appends to the journal, creating it first if need be; true when it was created.
    mutating func appendJournal(_ records: [Journal.Record]) throws -> Bool {
        let created = journal == nil
        if created { journal = Journal(absentAt: journalPath) }
        try journal!.append(records)
        return created
    }

    /// The lines `record` left out because the job was to leave the spool at once: it
    /// cannot, so they are journaled now (the job stays, and they must not go again).
    mutating func journalUnjournaled() throws -> Bool {
        guard !unjournaled.isEmpty else { return false }
        let created = try appendJournal(unjournaled.map { Journal.Record(.delivered, $0.key, reply: $0.outcome.diagnostic) })
        unjournaled = []
        return created
    }

    // MARK: sending

    /// Parts wait to go out.
    var hasMore: Bool { !stopped && !pending.isEmpty }
    /// Nothing is in flight and nothing more will go out: the attempt can end.
    var isSettled: Bool { inFlight.isEmpty && !hasMore }

    /// The next part to send: its index, envelope and message.
    mutating func next() -> (part: Int, envelope: Envelope, message: MessageReader)? {
        guard !stopped, let p = pending.popFirst() else { return nil }
        inFlight.append(p)
        let part = parts[p]
        let tx = content.transactions[part.transaction]
        let envelope = Envelope(sender: tx.sender, senderParameters: tx.senderParameters,
                                recipients: part.members.map { EnvelopeRecipient(address: tx.recipients[$0].address, parameters: tx.recipients[$0].parameters) })
        return (p, envelope, MessageReader(path: path, transaction: tx, bytes: bytes))
    }

    /// No more parts go out (the window closed, the worker stops): those in flight end,
    /// and the job goes back to the queue with what is decided journaled.
    mutating func stop() { stopped = true }

    // MARK: direct delivery (MX lines)

    /// Plans the parts again so that each holds recipients of one group only (the site of
    /// their domain, for direct delivery); `group` gets a transaction and a recipient index.
    /// Only before any part went out.
    mutating func regroup(_ group: (Int, Int) -> Int) {
        guard inFlight.isEmpty else { return }
        parts = JobAttempt.plan(content, journal: journal, settings: settings, group: group)
        pending = FIFO()
        for p in parts.indices { pending.append(p) }
    }

    /// The group of a part's recipients (as `regroup` was told).
    func group(of part: Int, _ group: (Int, Int) -> Int) -> Int {
        let p = parts[part]
        return p.members.first.map { group(p.transaction, $0) } ?? 0
    }

    /// Takes part `p` out of the waiting parts to send it now (direct delivery picks parts
    /// by site, not in order); nil when it is no longer waiting.
    mutating func claim(_ p: Int) -> (envelope: Envelope, message: MessageReader)? {
        guard !stopped, p < parts.count, !inFlight.contains(p), pending.remove(p) else { return nil }
        inFlight.append(p)
        let part = parts[p]
        let tx = content.transactions[part.transaction]
        let envelope = Envelope(sender: tx.sender, senderParameters: tx.senderParameters,
                                recipients: part.members.map { EnvelopeRecipient(address: tx.recipients[$0].address, parameters: tx.recipients[$0].parameters) })
        return (envelope, MessageReader(path: path, transaction: tx, bytes: bytes))
    }

    /// Part `p` cannot go now (its site rests, or DNS decided): each recipient is decided
    /// as `outcome` says (given the transaction and recipient index), without the relay.
    mutating func decide(_ p: Int, worker: Int, relay: String, _ outcome: (Int, Int) -> RecipientOutcome) -> [SpoolEffect] {
        guard pending.remove(p) else { return [] }
        inFlight.append(p)
        let part = parts[p]
        return record(TransactionResult(tag: TransactionTag(0), outcomes: part.members.map { outcome(part.transaction, $0) }),
                      part: p, worker: worker, relay: relay)
    }

    /// The parts not yet sent are deferred with `outcome` (the relay cannot be reached).
    mutating func deferUnsent(_ outcome: RecipientOutcome) {
        while let p = pending.popFirst() {
            for i in parts[p].members { deferrals[RecipientKey(parts[p].transaction, i)] = outcome }
            counters.deferred += parts[p].members.count
        }
    }

    // MARK: results

    /// One transaction's result turned into spool effects. When it settles the job whole
    /// (every recipient now decided, nothing else to send or in flight, no DSN to spool),
    /// its lines are not journaled: the job leaves the spool next (`.finish`), and that
    /// is the record — as it was the record for a job of one transaction all along.
    mutating func record(_ result: TransactionResult, part p: Int, worker: Int, relay: String) -> [SpoolEffect] {
        if let i = inFlight.firstIndex(of: p) { inFlight.remove(at: i) }
        let part = parts[p]
        let tx = content.transactions[part.transaction]
        let retryNow: Bool
        switch result.retry {
        case .notSent: retryNow = true
        case .newConnection: retryNow = !part.retried
        case .none: retryNow = false
        }
        var decided: [(key: RecipientKey, outcome: RecipientOutcome)] = []
        var failures: [Bounce.Failure] = []
        var tooMany: [Int] = []
        var again: [Int] = []
        var accepted = 0, deferred = 0
        for (i, outcome) in zip(part.members, result.outcomes) {
            let key = RecipientKey(part.transaction, i)
            switch outcome.kind {
            case .delivered:
                accepted += 1
                decided.append((key, outcome))
            case .failed:
                failures.append(Bounce.Failure(key: key, recipient: tx.recipients[i], outcome: outcome))
            case .deferred where retryNow:
                again.append(i)
            case .deferred:
                deferred += 1
                deferrals[key] = outcome
            case .tooMany:
                tooMany.append(i)
            }
        }
        if !tooMany.isEmpty {
            if accepted + failures.count > 0 {
                again += tooMany
            } else {
                // The relay took nobody: waiting is better than asking again at once.
                for (i, outcome) in zip(part.members, result.outcomes) where outcome.kind == .tooMany {
                    deferrals[RecipientKey(part.transaction, i)] = outcome
                }
                deferred += tooMany.count
            }
        }
        if !again.isEmpty {
            var retry = Part(transaction: part.transaction, members: again, number: part.number, split: part.split)
            retry.retried = part.retried || result.retry == .newConnection
            parts.append(retry)
            pending.pushFront(parts.count - 1)
        }
        counters.delivered += accepted
        counters.deferred += deferred
        counters.failed += failures.count
        if accepted > 0 { counters.bytes += tx.wireSize }

        var effects: [SpoolEffect] = []
        if !decided.isEmpty {
            if failures.isEmpty && deferrals.isEmpty && inFlight.isEmpty && pending.isEmpty {
                unjournaled = decided
            } else {
                effects.append(.journal(decided.map { Journal.Record(.delivered, $0.key, reply: $0.outcome.diagnostic) }))
            }
        }
        if !failures.isEmpty {
            effects.append(.bounce(Bounce(sender: tx.sender, headers: .transaction(path: path, tx), arrival: path, failures: failures, relay: relay)))
        }
        let first = result.outcomes.first { $0.kind == .delivered } ?? result.outcomes.first
        effects.append(.transactionNote(TransactionNote(
            job: job.name, worker: worker, transaction: part.transaction + 1, transactions: content.transactions.count,
            part: part.split ? part.number + 1 : nil, relay: relay, recipients: part.members.count,
            accepted: accepted, deferred: deferred, failed: failures.count,
            again: again.count, resent: result.retry == .notSent, reply: first)))
        return effects
    }

    /// The DSN for these recipients could not be spooled: they are not crossed off, they
    /// wait and are reported again next time.
    mutating func bounceFailed(_ bounce: Bounce) {
        for failure in bounce.failures { deferrals[failure.key] = failure.outcome }
        counters.failed -= bounce.failures.count
        counters.deferred += bounce.failures.count
    }

    // MARK: the end

    /// How the attempt ends, once it is settled.
    func conclusion(now: Double) -> [SpoolEffect] {
        if stopped && !pending.isEmpty { return [.putBack] }
        if deferrals.isEmpty { return [.finish] }
        let ordered = deferrals.sorted { $0.key < $1.key }
        if expired {
            // QUEUE_LIFETIME is over: the deferred recipients fail with their last reply.
            var byTransaction: [Int: [Bounce.Failure]] = [:]
            for (key, last) in ordered {
                let outcome = RecipientOutcome(.failed, origin: .local("delivery time expired; last reply: \(last.diagnostic)"), status: .expired)
                byTransaction[key.transaction, default: []].append(
                    Bounce.Failure(key: key, recipient: content.transactions[key.transaction].recipients[key.recipient], outcome: outcome))
            }
            var effects: [SpoolEffect] = [.note(.warning, "job=\(job.name): \(deferrals.count) recipient(s) deferred past QUEUE_LIFETIME; failing them")]
            for (t, failures) in byTransaction.sorted(by: { $0.key < $1.key }) {
                let tx = content.transactions[t]
                effects.append(.bounce(Bounce(sender: tx.sender, headers: .transaction(path: path, tx), arrival: path, failures: failures, relay: nil)))
            }
            return effects + [.expire(count: deferrals.count)]
        }
        let schedule = settings.retrySchedule
        let due = now + schedule[min(journal?.attempts ?? 0, schedule.count - 1)]
        let records = ordered.map { Journal.Record(.deferred, $0.key, reply: $0.value.diagnostic) }
        return [.deferral(records, due: due)]
    }

    /// The parts still to send, split at MAXBSMTP recipients and sorted as asked.
    private static func plan(_ job: BSMTPJob, journal: Journal?, settings: DeliverySettings) -> [Part] {
        var parts: [Part] = []
        parts.reserveCapacity(job.transactions.count)
        for tx in job.transactions {
            let members = undecided(tx, journal)
            if !members.isEmpty { parts += plan(tx, members, settings: settings) }
        }
        return parts
    }

    /// The same, the recipients of each transaction grouped by `group` first.
    private static func plan(_ job: BSMTPJob, journal: Journal?, settings: DeliverySettings,
                             group: (Int, Int) -> Int) -> [Part] {
        var parts: [Part] = []
        for tx in job.transactions {
            var groups: [Int: [Int]] = [:]
            for r in undecided(tx, journal) { groups[group(tx.index, r), default: []].append(r) }
            for key in groups.keys.sorted() {
                guard let members = groups[key] else { continue }
                parts += plan(tx, members, settings: settings)
            }
        }
        return parts
    }

    /// The recipients of `tx` the journal does not say are decided.
    private static func undecided(_ tx: Transaction, _ journal: Journal?) -> [Int] {
        guard let journal else { return Array(tx.recipients.indices) }
        return tx.recipients.indices.filter { journal.decided[RecipientKey(tx.index, $0)] == nil }
    }

    /// A transaction's `members` in parts of at most MAXBSMTP, sorted as SORT_RECIPIENTS says.
    private static func plan(_ tx: Transaction, _ members: [Int], settings: DeliverySettings) -> [Part] {
        var members = members
        let sortNow = settings.sort == .byDomain
            || (settings.sort == .byDomainWhenSplit && tx.recipients.count > settings.maxRecipients)
        if !sortNow && members.count <= settings.maxRecipients {
            return [Part(transaction: tx.index, members: members, number: 0, split: false)]
        }
        if sortNow {
            members = members.enumerated()
                .sorted { (tx.recipients[$0.element].domain, $0.offset) < (tx.recipients[$1.element].domain, $1.offset) }
                .map(\.element)
        }
        let split = members.count > settings.maxRecipients
        return stride(from: 0, to: members.count, by: settings.maxRecipients).enumerated().map { number, start in
            Part(transaction: tx.index, members: Array(members[start..<min(start + settings.maxRecipients, members.count)]),
                 number: number, split: split)
        }
    }
}
