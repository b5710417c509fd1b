// The thread of a worker on a relay line, at work: its routes (first host, failover), its
// open attempts on the conveyor, its loop.
//
// The loop, per turn: take a job when no open attempt has more to send (without waiting
// while transactions are in flight), submit what the connection has room for, let the
// session move bytes, and apply each result's effects. Strict round-robin counts a worker
// as available only once it has reached its relay, and as unavailable from the first
// failure until then.

import Foundation
import SMTPClient
import SpoolKit

/// A worker's thread at work: its routes, its open attempts, its loop. Thread-confined.
struct RelayShift {
    let worker: Worker
    let primary: RelayRoute
    let failover: RelayRoute?
    private let primaryOnly: [RelayRoute]
    /// The route whose connection carries the open attempts' transactions.
    var current: RelayRoute?
    var conveyor = Conveyor()
    let executor: SpoolExecutor
    var id: Int { worker.spec.id }

    init(worker: Worker) {
        self.worker = worker
        primary = RelayRoute(worker.spec.settings.relay, settings: worker.sessionSettings)
        primaryOnly = [primary]
        failover = worker.spec.settings.failover.map { RelayRoute($0, settings: worker.sessionSettings) }
        executor = worker.executor
    }

    mutating func run() {
        while !worker.isStopping {
            if worker.isPaused {
                windDown()
                worker.queue.setAvailable(id, false)
                worker.board.update(id) { $0.state = .paused; $0.job = nil }
                if worker.draining { break }
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            let open = worker.isOpenNow
            let routes = usableRoutes(open: open)
            if let current, !routes.contains(where: { $0 === current }) {
                windDown()  // its window closed, or it failed: finish what is in flight there
            }
            if routes.isEmpty && conveyor.isEmpty {
                // Nothing to send to now: closed (outside every window, no failover) or down.
                worker.queue.setAvailable(id, false)
                if !open { _ = primary.session.close() }
                worker.board.update(id) { $0.state = open ? .down : .closed; $0.job = nil }
                if worker.draining { break }
                Thread.sleep(forTimeInterval: Self.seconds(Limits.idleRecheck))
                continue
            }
            if !conveyor.canDraw {
                switch takeJob(open: open, routes: routes) {
                case .stop: return finish()
                case .again: continue
                case .go: break
                }
            }
            sendAndReceive(routes: routes)
        }
        finish()
    }

    /// The routes that may be used now: the first host inside its windows, then the
    /// failover; a resting one is left out. (The usual answer, the first host alone, is
    /// a list kept ready: no list is built per message.)
    private func usableRoutes(open: Bool) -> [RelayRoute] {
        if failover == nil, open, !primary.isResting { return primaryOnly }
        return [open ? primary : nil, failover].compactMap { $0 }.filter { !$0.isResting }
    }

    private enum Turn { case go, again, stop }

    /// Takes a job and opens its attempt on a connected route.
    private mutating func takeJob(open: Bool, routes: [RelayRoute]) -> Turn {
        let pools = worker.spec.settings.pools
        let job: QueuedJob
        if (current?.session.transactionsInFlight ?? 0) > 0 || !conveyor.isEmpty {
            // Transactions are in flight: take a job only if one is there now.
            guard let taken = worker.queue.tryTake(worker: id, serving: pools) else { return .go }
            job = taken
        } else {
            if conveyor.isEmpty { worker.board.update(id) { $0.state = .idle; $0.job = nil } }
            let keepWaiting = { [worker] in !worker.isStopping && !worker.isPaused && worker.isOpenNow == open }
            switch worker.queue.take(worker: id, serving: pools, keepWaiting: keepWaiting) {
            case .job(let taken): job = taken
            case .finished: return .stop
            case .recheck: return .again
            }
        }
        let now = worker.context.clock.seconds
        var attempt: Attempt
        if let slice = job.slice {
            guard let run = worker.context.merges.run(for: job.name) else {
                Log.error("job=\(job.name): slice \(slice + 1) of a mail-merge pass that has ended; dropped")
                worker.queue.finished(job)
                return .again
            }
            attempt = .slice(SliceAttempt(job: job, run: run, index: slice, heloName: worker.context.heloName, clock: worker.context.clock))
        } else {
            let opening = JobAttempt.open(job, spool: worker.context.spool, journals: worker.context.journals,
                                          settings: worker.context.settings, now: now)
            switch opening {
            case .ready(let plain):
                if worker.context.distributes(job, .bsmtp(plain.content, bytes: plain.bytes), journalPath: plain.journalPath, now: now) {
                    worker.settle(job, .finished, AttemptCounters())
                    return .again
                }
                attempt = .plain(plain)
            case .merge(let merge, let journalPath):
                if worker.context.distributes(job, .merge(merge), journalPath: journalPath, now: now) {
                    worker.settle(job, .finished, AttemptCounters())
                    return .again
                }
                beginPass(job, merge, journalPath: journalPath, now: now)
                return .again
            default:
                worker.settle(job, executor.apply(opening, job: job), AttemptCounters())
                return .again
            }
        }
        worker.board.update(id) { $0.state = .busy; $0.job = job.name.fileName; $0.since = now }
        if let failure = connect(routes) {
            if worker.draining {
                // A drain tries each job once: no relay now means deferred, and it says so.
                let outcome = RecipientOutcome(.deferred, origin: .connection(.notConnected(failure)))
                attempt.deferUnsent(outcome)
                let effects: [SpoolEffect] = [.note(.warning, "job=\(job.name): \(attempt.counters.deferred) recipient(s) deferred: \(failure)")]
                    + attempt.conclusion(now: now)
                for settlement in executor.apply(effects, to: &attempt) { worker.settle(settlement) }
            } else {
                worker.queue.putBack(job)
            }
            return .again
        }
        conveyor.add(attempt)
        return .go
    }

    /// A mail-merge job taken from the queue: its pass begins, and its slices go to the
    /// queue for every worker of its pool. The job stays in hand until the pass ends.
    private mutating func beginPass(_ job: QueuedJob, _ merge: MergeJob, journalPath: String, now: Double) {
        let context = worker.context
        let journal: MergeJournal
        do {
            journal = try MergeJournal(path: journalPath, rowCount: merge.rowCount)
        } catch {
            // Without it every row would be sent again: better wait and say so.
            Log.error("job=\(job.name): cannot read its journal \(journalPath): \(error); will try again")
            worker.settle(job, .deferred(job.place, due: now + context.settings.retrySchedule[0]), AttemptCounters())
            return
        }
        let path = context.spool.path(of: job.name, in: job.place)
        guard let run = MergeRun.begin(job, merge: merge, path: path, journalPath: journalPath, journal: journal,
                                       slice: context.mergeSlice, queueLifetime: context.settings.queueLifetime, now: now) else {
            // Every row was decided (the last pass ended in a crash): the job leaves.
            do {
                try context.spool.finish(job.name, in: job.place, journal: journalPath)
                context.journals.remove(journalPath)
                worker.settle(job, .finished, AttemptCounters())
            } catch {
                Log.error("job=\(job.name): every row decided but cannot remove \(path): \(error)")
                worker.settle(job, .deferred(job.place, due: now + context.settings.retrySchedule[0]), AttemptCounters())
            }
            return
        }
        context.merges.add(run)
        Log.notice("job=\(job.name): mail-merge pass \(journal.passes + 1): \(run.toSend) of \(merge.rowCount) row(s) to send, in \(run.slices.count) slice(s) of up to \(context.mergeSlice)")
        let size = merge.templateRange.upperBound - merge.templateRange.lowerBound
        worker.queue.offer(run.slices.indices.map { JobOffer(name: job.name, place: job.place, size: size, due: nil, slice: $0) })
    }

    /// The first route that is connected or connects; nil when one is, else the failure.
    private mutating func connect(_ routes: [RelayRoute]) -> String? {
        if let current, current.session.isOpen, routes.contains(where: { $0 === current }) {
            if current.session.transactionsInFlight > 0 || current.session.checkAlive() { return nil }
        }
        var failure = "no relay may be used now"
        for route in routes {
            let reused = route.session.isOpen
            do {
                try route.connect()
            } catch {
                failure = "relay \(route.relay) unavailable: \(error)"
                worker.board.update(id) {
                    $0.connectionFailures += 1
                    $0.lastError = "\(route.relay): \(error)"
                }
                Log.warning("worker \(id): \(failure)")
                continue
            }
            if current !== route { windDown() }
            for other in [primary, failover].compactMap({ $0 }) where other !== route { _ = other.session.close() }
            current = route
            worker.queue.setAvailable(id, true)
            if !reused { announce(route) }
            return nil
        }
        worker.queue.setAvailable(id, false)
        return failure
    }

    private func announce(_ route: RelayRoute) {
        let session = route.session
        worker.board.update(id) {
            $0.connections += 1
            $0.peer = session.peer
            $0.pipelining = session.capabilities.pipelining
            $0.tls = session.tlsDescription.map { $0 + (session.tlsVerified ? " (verified)" : " (not verified)") }
            $0.lastError = nil
        }
        Log.info("worker \(id): connected to \(session.peer) (\(session.capabilities.pipelining ? "PIPELINING" : "no PIPELINING")\(session.capabilities.chunking ? ", CHUNKING" : "")\(session.tlsDescription.map { ", " + $0 } ?? ""))")
    }

    /// Submits what the connection has room for, moves bytes, applies the results.
    private mutating func sendAndReceive(routes: [RelayRoute]) {
        if conveyor.canDraw && current?.session.isOpen != true {
            // The connection dropped under the open attempts: a new one, or they wait.
            if let failure = connect(routes) { abandonUnsent(reason: failure) }
        }
        guard let route = current else { return }
        let session = route.session
        if worker.isStopping || worker.isPaused || (route === primary && !worker.isOpenNow) {
            conveyor.stopAll()
        }
        while session.isOpen, session.hasRoom, let next = conveyor.draw() {
            guard let message = sevenBitSafe(next.message, for: session, tag: next.tag, envelope: next.envelope, relay: route.relay.host) else {
                continue
            }
            if worker.context.limiter.isActive {
                // The envelope's commands count too (roughly: each line as written).
                worker.context.limiter.charge(next.envelope.recipients.reduce(next.envelope.sender.utf8.count + 40) { $0 + $1.address.utf8.count + 14 }, pool: next.pool)
                session.submit(OutgoingTransaction(tag: next.tag, envelope: next.envelope,
                                                   message: ThrottledMessage(message: message, limiter: worker.context.limiter, pool: next.pool)))
            } else {
                session.submit(OutgoingTransaction(tag: next.tag, envelope: next.envelope, message: message))
            }
        }
        absorb(session.advance(), relay: route.relay.host)
    }

    /// The message as this relay may take it (`SevenBitSafety`); nil when it cannot go,
    /// its result already recorded.
    private mutating func sevenBitSafe(_ message: any MessageSource, for session: SMTPSession, tag: TransactionTag,
                                       envelope: Envelope, relay: String) -> (any MessageSource)? {
        switch SevenBitSafety.check(message, for: session, policy: worker.spec.settings.eightBit) {
        case .send(let safe): return safe
        case .decided(let outcome):
            absorb([TransactionResult(tag: tag, outcomes: envelope.recipients.map { _ in outcome })], relay: relay)
            return nil
        }
    }

    /// Applies results to their attempts, then concludes the attempts that are settled.
    private mutating func absorb(_ results: [TransactionResult], relay: String) {
        for result in results {
            guard let (attemptID, effects) = conveyor.record(result, worker: id, relay: relay) else {
                Log.error("worker \(id): a result for an unknown transaction \(result.tag)")
                continue
            }
            let executor = self.executor
            for settlement in conveyor.update(attemptID, { executor.apply(effects, to: &$0) }) ?? [] {
                worker.settle(settlement)
            }
        }
        concludeSettled()
    }

    private mutating func concludeSettled() {
        var settled = conveyor.takeSettled()
        settled.reverse()
        while var attempt = settled.popLast() {  // moved out, not copied
            for settlement in executor.apply(attempt.conclusion(now: worker.context.clock.seconds), to: &attempt) {
                worker.settle(settlement)
            }
        }
        if conveyor.isEmpty {
            worker.board.update(id) { if $0.state == .busy { $0.state = .idle }; $0.job = nil }
        } else {
            let job = conveyor.lastJob
            worker.board.update(id) { $0.job = job?.fileName }
        }
    }

    /// The relay cannot be reached: what was not sent waits for the retry schedule.
    private mutating func abandonUnsent(reason: String) {
        let outcome = RecipientOutcome(.deferred, origin: .connection(.notConnected(reason)))
        for attemptID in conveyor.deferUnsent(outcome) {
            let executor = self.executor
            for settlement in conveyor.update(attemptID, { attempt in
                executor.apply([.note(.warning, "job=\(attempt.job.name): unsent recipients deferred: \(reason)")], to: &attempt)
            }) ?? [] {
                worker.settle(settlement)
            }
        }
        concludeSettled()
    }

    /// No new transaction: those in flight end, every open attempt concludes.
    private mutating func windDown() {
        conveyor.stopAll()
        if let route = current {
            absorb(route.session.settle(), relay: route.relay.host)
        }
        concludeSettled()
    }

    private mutating func finish() {
        windDown()
        for route in [primary, failover].compactMap({ $0 }) {
            absorb(route.session.close(), relay: route.relay.host)
        }
        worker.queue.setAvailable(id, false)
        worker.board.update(id) { $0.state = .stopped; $0.job = nil }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
