// An attempt a worker has open, whatever its job's form: a plain BSMTP job (`JobAttempt`)
// or one slice of a mail-merge pass (`SliceAttempt`). The conveyor and the executor speak
// to both through this one type; each case keeps its own logic.

import SMTPClient
import SpoolKit

enum Attempt {
    case plain(JobAttempt)
    case slice(SliceAttempt)
    /// Only while a mutating method runs: the payload is moved out and back, so that its
    /// arrays are changed in place instead of copied (copy-on-write sees one owner).
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
        switch self {
        case .plain(var a):
            self = .moving
            defer { self = .plain(a) }
            return a.next().map { ($0.part, $0.envelope, $0.message) }
        case .slice(var a):
            self = .moving
            defer { self = .slice(a) }
            return a.next().map { ($0.part, $0.envelope, $0.message) }
        case .moving: return nil
        }
    }

    mutating func record(_ result: TransactionResult, part: Int, worker: Int, relay: String) -> [SpoolEffect] {
        switch self {
        case .plain(var a):
            self = .moving
            defer { self = .plain(a) }
            return a.record(result, part: part, worker: worker, relay: relay)
        case .slice(var a):
            self = .moving
            defer { self = .slice(a) }
            return a.record(result, part: part, worker: worker, relay: relay)
        case .moving: return []
        }
    }

    /// Runs `body` on a plain job's attempt, in place; nil for a slice.
    mutating func withPlain<R>(_ body: (inout JobAttempt) -> R) -> R? {
        guard case .plain(var a) = self else { return nil }
        self = .moving
        defer { self = .plain(a) }
        return body(&a)
    }

    mutating func stop() {
        switch self {
        case .plain(var a): self = .moving; a.stop(); self = .plain(a)
        case .slice(var a): self = .moving; a.stop(); self = .slice(a)
        case .moving: break
        }
    }

    mutating func deferUnsent(_ outcome: RecipientOutcome) {
        switch self {
        case .plain(var a): self = .moving; a.deferUnsent(outcome); self = .plain(a)
        case .slice(var a): self = .moving; a.deferUnsent(outcome); self = .slice(a)
        case .moving: break
        }
    }

    mutating func bounceFailed(_ bounce: Bounce) {
        switch self {
        case .plain(var a): self = .moving; a.bounceFailed(bounce); self = .plain(a)
        case .slice(var a): self = .moving; a.bounceFailed(bounce); self = .slice(a)
        case .moving: break
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
