// The job attempts one worker has open on its connection, and the transactions between
// them. Transactions are drawn from the oldest attempt that has more to send, so a job's
// parts go in order and the next job's first transaction follows the previous job's last
// one on the wire (PIPELINING across transactions). A transaction's tag names its attempt
// and its part; a result finds its attempt by the tag alone.
// Invariant: an attempt is here from the moment its job is taken until its conclusion has
// been applied; a tag handed out is answered by exactly one `record`.

import SMTPClient
import SpoolKit

struct Conveyor {
    /// The open attempts in the order they were added (a handful at most: those with a
    /// transaction in flight and the next), each changed in place.
    private var slots: [(id: UInt32, attempt: Attempt)] = []
    private var nextID: UInt32 = 1

    var isEmpty: Bool { slots.isEmpty }
    var jobs: [JobName] { slots.map { $0.attempt.job.name } }
    /// The name of the job taken last.
    var lastJob: JobName? { slots.last?.attempt.job.name }
    /// Some attempt has a part waiting to go out.
    var canDraw: Bool { slots.contains { $0.attempt.hasMore } }

    mutating func add(_ attempt: Attempt) {
        let id = nextID
        nextID = nextID == UInt32.max ? 1 : nextID + 1
        slots.append((id, attempt))
    }

    /// The next transaction to submit, tagged, with the job's pool (for the rate limiter).
    mutating func draw() -> (tag: TransactionTag, envelope: Envelope, message: any MessageSource, pool: Pool)? {
        for i in slots.indices where slots[i].attempt.hasMore {
            guard let next = slots[i].attempt.next() else { continue }
            return (Conveyor.tag(slots[i].id, next.part), next.envelope, next.message, slots[i].attempt.job.name.pool)
        }
        return nil
    }

    /// A result applied to its attempt: the attempt's id and the effects it asks for.
    mutating func record(_ result: TransactionResult, worker: Int, relay: String) -> (id: UInt32, effects: [SpoolEffect])? {
        let (id, part) = Conveyor.split(result.tag)
        guard let i = slots.firstIndex(where: { $0.id == id }) else { return nil }
        return (id, slots[i].attempt.record(result, part: part, worker: worker, relay: relay))
    }

    /// Runs `body` on the attempt `id` (the executor applies effects to it in place).
    mutating func update<T>(_ id: UInt32, _ body: (inout Attempt) -> T) -> T? {
        guard let i = slots.firstIndex(where: { $0.id == id }) else { return nil }
        return body(&slots[i].attempt)
    }

    /// No attempt sends another part; those in flight end as they will.
    mutating func stopAll() {
        for i in slots.indices { slots[i].attempt.stop() }
    }

    /// Every attempt's unsent parts are deferred with `outcome`; returns the ids touched.
    mutating func deferUnsent(_ outcome: RecipientOutcome) -> [UInt32] {
        var touched: [UInt32] = []
        for i in slots.indices where slots[i].attempt.hasMore {
            slots[i].attempt.deferUnsent(outcome)
            touched.append(slots[i].id)
        }
        return touched
    }

    /// Removes and returns the attempts with nothing in flight and nothing left to send.
    mutating func takeSettled() -> [Attempt] {
        guard slots.contains(where: { $0.attempt.isSettled }) else { return [] }
        var settled: [Attempt] = []
        var i = 0
        while i < slots.count {
            if slots[i].attempt.isSettled { settled.append(slots.remove(at: i).attempt) } else { i += 1 }
        }
        return settled
    }

    static func tag(_ id: UInt32, _ part: Int) -> TransactionTag {
        TransactionTag(UInt64(id) << 32 | UInt64(UInt32(truncatingIfNeeded: part)))
    }

    static func split(_ tag: TransactionTag) -> (id: UInt32, part: Int) {
        (UInt32(truncatingIfNeeded: tag.rawValue >> 32), Int(UInt32(truncatingIfNeeded: tag.rawValue)))
    }
}
