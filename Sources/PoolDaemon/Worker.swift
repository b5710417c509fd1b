// One SMTP worker: a thread with its own relay connection, taking the oldest due job of
// the pools it serves, one job at a time. Inside its open-time windows it sends to its
// first host; outside them, or while the first host cannot be reached, to its failover
// host if it has one, otherwise it does no work (closed, or down). A host that cannot be
// reached is left alone for a growing pause (5 s up to 2 min) and then tried again, so the
// worker returns to its first host by itself. When a window closes mid-job the worker
// finishes the transaction in hand and stops there.

import Foundation
import SMTPClient
import SpoolKit
import Synchronization

final class Worker: @unchecked Sendable {
    let spec: WorkerSpec
    let queue: JobQueue
    let board: StatusBoard
    let delivery: JobDelivery
    let sessionSettings: SessionSettings
    let draining: Bool
    let clock: @Sendable () -> Date
    let calendar: Calendar
    /// The daemon is stopping (checked between transactions).
    let daemonStopping: @Sendable () -> Bool
    private let stopping = Atomic<Bool>(false)
    private let paused = Atomic<Bool>(false)
    private let done = NSCondition()
    private var finished = false

    static let firstBackoff = 5.0
    static let maxBackoff = 120.0

    /// One relay the worker may use, with its connection and its pause after failures.
    private final class Route {
        let relay: RelayHost
        let session: SMTPSession
        var downUntil = 0.0
        var backoff = Worker.firstBackoff
        init(_ relay: RelayHost, settings: SessionSettings) {
            self.relay = relay
            session = SMTPSession(host: relay.host, port: relay.port, settings: settings)
        }
    }

    init(spec: WorkerSpec, queue: JobQueue, board: StatusBoard, delivery: JobDelivery, sessionSettings: SessionSettings,
         draining: Bool, clock: @escaping @Sendable () -> Date, calendar: Calendar, daemonStopping: @escaping @Sendable () -> Bool) {
        self.spec = spec
        self.queue = queue
        self.board = board
        self.delivery = delivery
        self.sessionSettings = sessionSettings
        self.draining = draining
        self.clock = clock
        self.calendar = calendar
        self.daemonStopping = daemonStopping
    }

    func start() {
        let thread = Thread { [self] in
            Thread.current.name = "smtpw\(spec.id)"
            run()
            done.lock()
            finished = true
            done.broadcast()
            done.unlock()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Asks the worker to stop after the transaction in hand.
    func stop() { stopping.store(true, ordering: .relaxed) }
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// `poolctl pause N`: the transaction in hand ends, then the worker takes nothing
    /// until resumed (strict round-robin passes its jobs on, as for a dead worker).
    func pause() { paused.store(true, ordering: .relaxed) }
    func resume() { paused.store(false, ordering: .relaxed) }
    var isPaused: Bool { paused.load(ordering: .relaxed) }

    func join() {
        done.lock()
        while !finished { done.wait() }
        done.unlock()
    }

    var isOpenNow: Bool { spec.settings.isOpen(at: clock(), calendar: calendar) }

    private func run() {
        let primary = Route(spec.settings.relay, settings: sessionSettings)
        let failover = spec.settings.failover.map { Route($0, settings: sessionSettings) }
        while !isStopping {
            if isPaused {
                queue.setAvailable(spec.id, false)
                settleSessions(primary, failover)
                board.update(spec.id) { $0.state = .paused; $0.job = nil }
                if draining { break }
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            let now = clock().timeIntervalSince1970
            let open = isOpenNow
            let routes = [open ? primary : nil, failover].compactMap { $0 }
            guard let route = routes.first(where: { now >= $0.downUntil }) else {
                // Nothing to send to now: closed (outside every window, no failover) or down.
                settleSessions(primary, failover)
                queue.setAvailable(spec.id, false)
                if !open { primary.session.close() }
                board.update(spec.id) { $0.state = open ? .down : .closed; $0.job = nil }
                if draining { break }
                Thread.sleep(forTimeInterval: 0.25)
                continue
            }
            queue.setAvailable(spec.id, true)
            board.update(spec.id) { if $0.state != .idle { $0.state = .idle; $0.lastError = nil } }
            let job: QueuedJob
            if primary.session.hasHeldTransaction || failover?.session.hasHeldTransaction == true {
                // A final dot waits to go with the next envelope: take a job only if one is
                // there now; never wait with it held back.
                guard let taken = queue.tryTake(worker: spec.id, serving: spec.settings.pools) else {
                    settleSessions(primary, failover)
                    continue
                }
                job = taken
            } else {
                switch queue.take(worker: spec.id, serving: spec.settings.pools, keepWaiting: { !isStopping && !isPaused && isOpenNow == open }) {
                case .job(let taken): job = taken
                case .finished: return finish(primary, failover)
                case .recheck: continue
                }
            }
            board.update(spec.id) { $0.state = .busy; $0.job = job.name.fileName; $0.since = now }
            // The route in use: the first that connects, trying the next when one cannot.
            var chosen: Route?
            for candidate in routes where clock().timeIntervalSince1970 >= candidate.downUntil {
                for other in [primary, failover].compactMap({ $0 }) where other !== candidate { other.session.close() }
                if candidate.session.isOpen && candidate.session.checkAlive() || connect(candidate) {
                    chosen = candidate
                    break
                }
            }
            guard let chosen else {
                if draining {
                    // A drain tries each job once: no relay now means deferred.
                    delivery.attempt(job, session: primary.session, reconnect: { false }, shouldStop: { false }) { self.settle(job, $0) }
                } else {
                    queue.putBack(job)
                }
                continue
            }
            board.update(spec.id) { $0.peer = chosen.session.peer }
            let onPrimary = chosen === primary
            delivery.attempt(job, session: chosen.session, reconnect: { connect(chosen) }, shouldStop: {
                isStopping || isPaused || daemonStopping() || (onPrimary && !isOpenNow)
            }, overlap: true) { self.settle(job, $0) }
        }
        finish(primary, failover)
    }

    /// Sends any final dot held back for the next envelope and takes its reply.
    private func settleSessions(_ primary: Route, _ failover: Route?) {
        primary.session.settle()
        failover?.session.settle()
    }

    private func finish(_ primary: Route, _ failover: Route?) {
        primary.session.close()
        failover?.session.close()
        queue.setAvailable(spec.id, false)
        board.update(spec.id) { $0.state = .stopped; $0.job = nil }
    }

    private func settle(_ job: QueuedJob, _ result: AttemptResult) {
        switch result.disposition {
        case .finished, .quarantined, .vanished:
            queue.finished(job)
        case .deferred(let path, let due):
            queue.reschedule(job, path: path, due: due)
        case .interrupted:
            queue.putBack(job)
        }
        board.update(spec.id) {
            $0.delivered += result.delivered
            $0.deferred += result.deferred
            $0.failed += result.failed
            $0.bytes += result.bytes
            switch result.disposition {
            case .finished, .quarantined: $0.jobs += 1
            default: break
            }
            // A job whose final dot went with the next envelope ends while the worker is
            // already on that next job: only the job it reports on is cleared.
            if $0.job == job.name.fileName {
                $0.state = .idle
                $0.job = nil
            }
            if case .quarantined = result.disposition { $0.quarantined += 1 }
        }
    }

    /// Opens a route's session; on failure logs it and pauses the route.
    private func connect(_ route: Route) -> Bool {
        do {
            try route.session.open()
            route.backoff = Worker.firstBackoff
            board.update(spec.id) {
                $0.connections += 1
                $0.peer = route.session.peer
                $0.pipelining = route.session.capabilities.pipelining
                $0.tls = route.session.tlsDescription.map { $0 + (route.session.tlsVerified ? " (verified)" : " (not verified)") }
            }
            Log.info("worker \(spec.id): connected to \(route.session.peer) (\(route.session.capabilities.pipelining ? "PIPELINING" : "no PIPELINING")\(route.session.capabilities.chunking ? ", CHUNKING" : "")\(route.session.tlsDescription.map { ", " + $0 } ?? ""))")
            return true
        } catch {
            route.downUntil = clock().timeIntervalSince1970 + route.backoff
            route.backoff = min(route.backoff * 2, Worker.maxBackoff)
            board.update(spec.id) {
                $0.connectionFailures += 1
                $0.lastError = "\(route.relay): \(error)"
            }
            Log.warning("worker \(spec.id): relay \(route.relay) unavailable: \(error)")
            return false
        }
    }
}
