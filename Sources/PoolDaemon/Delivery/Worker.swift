// One SMTP worker: a thread with its own relay connection, taking the oldest due job of
// the pools it serves. Inside its open-time windows it sends to its first host; outside
// them, or while the first host cannot be reached, to its failover host if it has one,
// otherwise it does no work (closed, or down). When a window closes, or the worker is
// paused or stopped, it sends no further transaction, finishes those in flight, and puts
// the unfinished jobs back with what is decided journaled.
// Its loop is `RelayShift` (a relay line) or `DirectShift` (an MX line).

import Foundation
import SMTPClient
import SpoolKit
import Synchronization

/// What every worker shares: the spool, the settings of delivery, and where DSNs go.
struct DeliveryContext: Sendable {
    let spool: Spool
    let settings: DeliverySettings
    let journals: JournalRegistry
    let limiter: RateLimiter
    let bounces: BounceReport
    let clock: WallClock
    /// The mail-merge passes running now.
    let merges: MergeRuns
    /// MERGE_SLICE: rows per slice of a merge pass.
    let mergeSlice: Int
    /// HELO_NAME, which a merge row's `&*MSGID;` carries.
    let heloName: String
    /// The resolver and sites of MX lines (nil without any).
    let direct: DirectDelivery?
    /// DIST_FORWARD (nil without it).
    let distribution: Distribution?

    /// Splits `job` by DIST_FORWARD if it should be: true when it was (it left the spool).
    /// A job with a journal was partly delivered here: it stays whole. Without DIST_FORWARD
    /// neither the content nor the journal's path is built (this runs for every job).
    func distributes(_ job: QueuedJob, _ content: @autoclosure () -> SpoolJob, journalPath: @autoclosure () -> String,
                     now: Double) -> Bool {
        guard let distribution, !journals.contains(journalPath()) else { return false }
        return distribution.split(job, content(), now: now)
    }
    /// Removes finished jobs off the workers' path (nil: each worker removes its own).
    let reaper: Reaper?
}

/// A message on its way to a relay that does not offer 8BITMIME (RFC 6152): converted to
/// 7-bit MIME unless the worker line says EIGHTBIT=pass, or failed (5.6.3) when it cannot be.
enum SevenBitSafety {
    enum Verdict {
        case send(any MessageSource)
        /// It does not go: this is its recipients' outcome.
        case decided(RecipientOutcome)
    }

    static func check(_ message: any MessageSource, for session: SMTPSession, policy: EightBitPolicy) -> Verdict {
        guard !session.capabilities.eightBitMIME, policy == .convert else { return .send(message) }
        do {
            switch try SevenBitTransport.prepare(message) {
            case .unchanged: return .send(message)
            case .converted(let converted): return .send(converted)
            case .refused(let failure):
                return .decided(RecipientOutcome(.failed, origin: .local("\(failure) (the relay does not offer 8BITMIME)"), status: .conversionImpossible))
            }
        } catch {
            return .decided(RecipientOutcome(.deferred, origin: .local("cannot read the message: \(error)")))
        }
    }
}

final class Worker: @unchecked Sendable {
    let spec: WorkerSpec
    let queue: JobQueue
    /// This worker's slot on the status board (its own lock: workers never wait for each other there).
    let board: StatusBoard.Slot
    let context: DeliveryContext
    let sessionSettings: SessionSettings
    let draining: Bool
    let calendar: Calendar
    let log: WorkerLog?
    /// This worker's finished log, when the daemon has a reaper.
    let finished: FinishedWriter?
    /// The daemon is stopping (checked before each transaction).
    let daemonStopping: @Sendable () -> Bool
    private let stopping = Atomic<Bool>(false)
    private let paused = Atomic<Bool>(false)
    private let done = NSCondition()
    private var ended = false

    init(spec: WorkerSpec, queue: JobQueue, board: StatusBoard, context: DeliveryContext, sessionSettings: SessionSettings,
         draining: Bool, calendar: Calendar, log: WorkerLog?, daemonStopping: @escaping @Sendable () -> Bool) {
        self.spec = spec
        self.queue = queue
        self.board = board.slot(for: spec.id)
        self.context = context
        self.sessionSettings = sessionSettings
        self.draining = draining
        self.calendar = calendar
        self.log = log
        self.daemonStopping = daemonStopping
        finished = context.reaper?.writer()
    }

    func start() {
        let thread = Thread { [self] in
            Thread.current.name = "smtpw\(spec.id)"
            if let direct = context.direct, spec.settings.isDirect {
                var shift = DirectShift(worker: self, direct: direct)
                shift.run()
            } else {
                var shift = RelayShift(worker: self)
                shift.run()
            }
            self.finished?.close()
            done.lock()
            ended = true
            done.broadcast()
            done.unlock()
        }
        thread.stackSize = Limits.workerStack
        thread.start()
    }

    /// Asks the worker to stop after the transactions in flight.
    func stop() { stopping.store(true, ordering: .relaxed) }
    var isStopping: Bool { stopping.load(ordering: .relaxed) || daemonStopping() }

    /// `poolctl pause N`: the transactions in flight end, then the worker takes nothing
    /// until resumed (strict round-robin passes its jobs on, as for a dead worker).
    func pause() { paused.store(true, ordering: .relaxed) }
    func resume() { paused.store(false, ordering: .relaxed) }
    var isPaused: Bool { paused.load(ordering: .relaxed) }

    func join() {
        done.lock()
        while !ended { done.wait() }
        done.unlock()
    }

    var isOpenNow: Bool { spec.settings.isOpen(at: context.clock.now(), calendar: calendar) }

    var executor: SpoolExecutor {
        SpoolExecutor(spool: context.spool, journals: context.journals, bounces: context.bounces, merges: context.merges,
                      settings: context.settings, heloName: context.heloName, clock: context.clock, log: log,
                      distribution: context.distribution, finished: finished)
    }

    func settle(_ settlement: Settlement) { settle(settlement.job, settlement.disposition, settlement.counters) }

    /// The queue and the board hear how a job's attempt ended.
    func settle(_ job: QueuedJob, _ disposition: Disposition, _ counters: AttemptCounters) {
        switch disposition {
        case .finished, .quarantined, .vanished: queue.finished([job])
        case .leaving: break  // the reaper tells the queue once the file is gone
        case .deferred(let place, let due): queue.reschedule(job, to: place, due: due)
        case .putBack: queue.putBack(job)
        }
        board.update(spec.id) {
            $0.delivered += counters.delivered
            $0.deferred += counters.deferred
            $0.failed += counters.failed
            $0.bytes += counters.bytes
            switch disposition {
            case .finished, .leaving, .quarantined: if job.slice == nil { $0.jobs += 1 }
            default: break
            }
            if case .quarantined = disposition { $0.quarantined += 1 }
        }
    }
}
