// One SMTP worker: a thread with its own relay connection, taking the oldest due job of
// the pools it serves, one job at a time. A relay that cannot be reached puts the job back
// for the others and marks the worker down for a growing pause (5 s up to 2 min).

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
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?
    private let done = NSCondition()
    private var finished = false

    static let firstBackoff = 5.0
    static let maxBackoff = 120.0

    init(spec: WorkerSpec, queue: JobQueue, board: StatusBoard, delivery: JobDelivery, sessionSettings: SessionSettings, draining: Bool) {
        self.spec = spec
        self.queue = queue
        self.board = board
        self.delivery = delivery
        self.sessionSettings = sessionSettings
        self.draining = draining
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
        self.thread = thread
        thread.start()
    }

    /// Asks the worker to stop after the transaction in hand.
    func stop() { stopping.store(true, ordering: .relaxed) }
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    func join() {
        done.lock()
        while !finished { done.wait() }
        done.unlock()
    }

    private func run() {
        let relay = spec.settings.relay
        let session = SMTPSession(host: relay.host, port: relay.port, settings: sessionSettings)
        var backoff = Worker.firstBackoff
        var downUntil = 0.0
        board.update(spec.id) { $0.state = .idle }
        while !isStopping {
            let now = Date().timeIntervalSince1970
            if now < downUntil {
                Thread.sleep(forTimeInterval: min(0.25, downUntil - now))
                continue
            }
            guard let job = queue.take(serving: spec.settings.pools) else { break }
            board.update(spec.id) { $0.state = .busy; $0.job = job.name.fileName; $0.since = now }
            if !session.isOpen || !session.checkAlive() {
                if !connect(session) {
                    if draining {
                        // A drain tries each job once: unreachable now means deferred.
                        let result = delivery.attempt(job, session: session, reconnect: { false })
                        settle(job, result)
                    } else {
                        queue.putBack(job)
                    }
                    downUntil = Date().timeIntervalSince1970 + backoff
                    backoff = min(backoff * 2, Worker.maxBackoff)
                    continue
                }
                backoff = Worker.firstBackoff
            }
            let result = delivery.attempt(job, session: session, reconnect: { connect(session) })
            settle(job, result)
        }
        session.close()
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
            $0.state = .idle
            $0.job = nil
            if case .quarantined = result.disposition { $0.quarantined += 1 }
        }
    }

    /// Opens the session; on failure logs it and marks the worker down.
    private func connect(_ session: SMTPSession) -> Bool {
        do {
            try session.open()
            board.update(spec.id) {
                $0.connections += 1
                $0.peer = session.peer
                $0.pipelining = session.capabilities.pipelining
                $0.lastError = nil
            }
            Log.info("worker \(spec.id): connected to \(session.peer) (\(session.capabilities.pipelining ? "PIPELINING" : "no PIPELINING"))")
            return true
        } catch {
            board.update(spec.id) {
                $0.state = .down
                $0.connectionFailures += 1
                $0.lastError = "\(error)"
                $0.since = Date().timeIntervalSince1970
            }
            Log.warning("worker \(spec.id): relay \(spec.settings.relay) unavailable: \(error)")
            return false
        }
    }
}
