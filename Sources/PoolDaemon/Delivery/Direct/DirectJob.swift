// A plain job delivered straight to its recipients' mail exchangers: its attempt (the same
// `JobAttempt` value a relay worker uses, with parts planned one site at a time) shared by
// the workers that serve its sites, behind a lock. A part goes out when a worker leased to
// its site claims it; each result is recorded and its effects applied at once; the job
// ends (finishes, or moves to deferred/) when its last part has its outcome, whichever
// worker that is. The crash story is a plain job's (SpoolKit/README.md): each
// transaction's decisions are journaled as its reply is read, whatever bin it sat in.

import SMTPClient
import SpoolKit

final class DirectJob: Sendable {
    let job: QueuedJob
    /// Each part's site, by part index (parts added later for a retry keep their site).
    private let state: Locked<State>

    private struct State {
        var attempt: Attempt
        var sites: [Int: SiteKey]
        var ended = false
    }

    init(_ attempt: JobAttempt, sites: [Int: SiteKey]) {
        job = attempt.job
        state = Locked(State(attempt: .plain(attempt), sites: sites))
    }

    /// The envelope and message of part `p`, taken out of the waiting parts; nil when it
    /// no longer waits (it was deferred meanwhile).
    func claim(_ p: Int) -> (envelope: Envelope, message: MessageReader)? {
        state.withLock { s in
            guard case .plain(var a) = s.attempt else { return nil }
            s.attempt = .moving
            defer { s.attempt = .plain(a) }
            return a.claim(p)
        }
    }

    func site(of part: Int) -> SiteKey? { state.withLock { $0.sites[part] } }

    func recipients(of part: Int) -> Int {
        state.withLock { s in
            if case .plain(let a) = s.attempt, part < a.parts.count { return a.parts[part].members.count }
            return 0
        }
    }

    /// What happened to the part, applied: journal lines, DSNs, and — when this was the job's
    /// last part — its end. Parts to send again at once (a 452, a failed connection) come
    /// back to be put in their site's bin.
    func record(_ result: TransactionResult?, part p: Int, decidedAs outcome: ((Int, Int) -> RecipientOutcome)? = nil,
                worker: Int, relay: String, executor: SpoolExecutor) -> (again: [Int], ended: [Settlement]) {
        state.withLock { s in
            guard case .plain(var a) = s.attempt else { return ([], []) }
            s.attempt = .moving
            let before = a.parts.count
            let effects: [SpoolEffect]
            if let result {
                effects = a.record(result, part: p, worker: worker, relay: relay)
            } else if let outcome {
                effects = a.decide(p, worker: worker, relay: relay, outcome)
            } else {
                effects = []
            }
            let again = Array(before..<a.parts.count)
            if let site = s.sites[p] { for q in again { s.sites[q] = site } }
            s.attempt = .plain(a)
            var ended = executor.apply(effects, to: &s.attempt)
            ended += conclude(&s, executor: executor)
            return (again, ended)
        }
    }

    /// Ends the job if nothing is left to send or in flight.
    func concludeIfSettled(executor: SpoolExecutor) -> [Settlement] {
        state.withLock { conclude(&$0, executor: executor) }
    }

    private func conclude(_ s: inout State, executor: SpoolExecutor) -> [Settlement] {
        guard !s.ended, s.attempt.isSettled else { return [] }
        s.ended = true
        return executor.apply(s.attempt.conclusion(now: executor.clock.seconds), to: &s.attempt)
    }
}
