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
    private var attempts: [UInt32: Attempt] = [:]
    /// Attempt ids in the order they were added.
    private var order: [UInt32] = []
    private var nextID: UInt32 = 1

    var isEmpty: Bool { attempts.isEmpty }
    var jobs: [JobName] { order.compactMap { attempts[$0]?.job.name } }
    /// Some attempt has a part waiting to go out.
    var canDraw: Bool { order.contains { attempts[$0]?.hasMore == true } }

    mutating func add(_ attempt: Attempt) {
        let id = nextID
        nextID = nextID == UInt32.max ? 1 : nextID + 1
        attempts[id] = attempt
        order.append(id)
    }

    /// The next transaction to submit, tagged, with the job's pool (for the rate limiter).
    mutating func draw() -> (tag: TransactionTag, envelope: Envelope, message: any MessageSource, pool: Pool)? {
        for id in order where attempts[id]?.hasMore == true {
            guard let next = attempts[id]?.next(), let pool = attempts[id]?.job.name.pool else { continue }
            return (Conveyor.tag(id, next.part), next.envelope, next.message, pool)
        }
        return nil
    }

    /// A result applied to its attempt: the attempt's id and the effects it asks for.
    mutating func record(_ result: TransactionResult, worker: Int, relay: String) -> (id: UInt32, effects: [SpoolEffect])? {
        let (id, part) = Conveyor.split(result.tag)
        guard let effects = attempts[id]?.record(result, part: part, worker: worker, relay: relay) else { return nil }
        return (id, effects)
    }

    /// Runs `body` on the attempt `id` (the executor applies effects to it in place).
    mutating func update<T>(_ id: UInt32, _ body: (inout Attempt) -> T) -> T? {
        // Moved out and back in: the attempt's arrays change in place (one owner).
        guard var attempt = attempts.removeValue(forKey: id) else { return nil }
        let value = body(&attempt)
        attempts[id] = attempt
        return value
    }

    /// No attempt sends another part; those in flight end as they will.
    mutating func stopAll() {
        for id in order { attempts[id]?.stop() }
    }

    /// Every attempt's unsent parts are deferred with `outcome`; returns the ids touched.
    mutating func deferUnsent(_ outcome: RecipientOutcome) -> [UInt32] {
        var touched: [UInt32] = []
        for id in order where attempts[id]?.hasMore == true {
            attempts[id]?.deferUnsent(outcome)
            touched.append(id)
        }
        return touched
    }

    /// Removes and returns the attempts with nothing in flight and nothing left to send.
    mutating func takeSettled() -> [Attempt] {
        var settled: [Attempt] = []
        order.removeAll { id in
            guard let attempt = attempts[id], attempt.isSettled else { return false }
            settled.append(attempt)
            attempts[id] = nil
            return true
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
