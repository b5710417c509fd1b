// An attempt a worker has open, whatever its job's form: a plain BSMTP job (`JobAttempt`)
// or one slice of a mail-merge pass (`SliceAttempt`). The conveyor and the executor speak
// to both through this one type; each case keeps its own logic.

import SMTPClient
import SpoolKit

enum Attempt {
    case plain(JobAttempt)
    case slice(SliceAttempt)
    /// Never seen from outside: a placeholder kept for callers that move an attempt out.
    case moving

    var job: QueuedJob {
        switch self {
        case .plain(let a): return a.job
        case .slice(let a): return a.job
        case .moving: preconditionFailure("an attempt read while it is being changed")
        }
    }

    var counters: AttemptCounters {
        switch self {
        case .plain(let a): return a.counters
        case .slice(let a): return a.counters
        case .moving: return AttemptCounters()
        }
    }

    var hasMore: Bool {
        switch self {
        case .plain(let a): return a.hasMore
        case .slice(let a): return a.hasMore
        case .moving: return false
        }
    }

    var isSettled: Bool {
        switch self {
        case .plain(let a): return a.isSettled
        case .slice(let a): return a.isSettled
        case .moving: return false
        }
    }

    /// The next transaction: its part (a part index, or a row), envelope and message.
    mutating func next() -> (part: Int, envelope: Envelope, message: any MessageSource)? {
        var next: (part: Int, envelope: Envelope, message: any MessageSource)?
        change { a in next = a.next().map { ($0.part, $0.envelope, $0.message) } } slice: { a in
            next = a.next().map { ($0.part, $0.envelope, $0.message) }
        }
        return next
    }

    mutating func record(_ result: TransactionResult, part: Int, worker: Int, relay: String) -> [SpoolEffect] {
        var effects: [SpoolEffect] = []
        change { effects = $0.record(result, part: part, worker: worker, relay: relay) } slice: {
            effects = $0.record(result, part: part, worker: worker, relay: relay)
        }
        return effects
    }

    /// Runs `body` on a plain job's attempt, in place; nil for a slice.
    mutating func withPlain<R>(_ body: (inout JobAttempt) -> R) -> R? {
        var value: R?
        change { value = body(&$0) } slice: { _ in }
        return value
    }

    mutating func stop() {
        change { $0.stop() } slice: { $0.stop() }
    }

    mutating func deferUnsent(_ outcome: RecipientOutcome) {
        change { $0.deferUnsent(outcome) } slice: { $0.deferUnsent(outcome) }
    }

    mutating func bounceFailed(_ bounce: Bounce) {
        change { $0.bounceFailed(bounce) } slice: { $0.bounceFailed(bounce) }
    }

    /// Changes the payload in place: it is moved out (`consume`), changed, and moved back,
    /// so neither its fields are retained nor its arrays copied.
    private mutating func change(_ plain: (inout JobAttempt) -> Void, slice: (inout SliceAttempt) -> Void) {
        switch consume self {
        case .plain(var a):
            plain(&a)
            self = .plain(a)
        case .slice(var a):
            slice(&a)
            self = .slice(a)
        case .moving:
            self = .moving
        }
    }

    func conclusion(now: Double) -> [SpoolEffect] {
        switch self {
        case .plain(let a): return a.conclusion(now: now)
        case .slice(let a): return a.conclusion()
        case .moving: return []
        }
    }
}
