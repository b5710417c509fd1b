// The daemon's index of jobs: one FIFO per pool of jobs due now, a timetable of deferred
// jobs, and the set of jobs in hand. Handing a job to a worker never touches the disk;
// a worker looks only at the queues of the pools it serves.
//
// Invariant: a job path is in at most one of {a pool queue, the timetable, in hand}, and
// `known` holds exactly the paths in those three; a path offered again while known is
// ignored (inotify and the rescan both report every job).

import Foundation
import SpoolKit

struct QueuedJob: Sendable {
    var name: JobName
    var path: String
    var size: Int64
    /// Arrival order: smaller is older.
    var sequence: UInt64
}

/// A FIFO with amortised O(1) pops from the front.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0
    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }
    mutating func append(_ e: Element) { items.append(e) }
    mutating func pushFront(_ e: Element) {
        if head > 0 { head -= 1; items[head] = e } else { items.insert(e, at: 0) }
    }
    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let e = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }
    var elements: ArraySlice<Element> { items[head...] }
}

final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var queues: [Pool: FIFO<QueuedJob>] = [:]
    private var timetable: [(due: Double, job: QueuedJob)] = []  // sorted by due
    private var known: Set<String> = []
    private var inHand: [String: QueuedJob] = [:]
    private var sequence: UInt64 = 0
    private var stopping = false
    private let draining: Bool
    private let clock: @Sendable () -> Double

    init(draining: Bool, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.draining = draining
        self.clock = clock
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// Adds jobs found in `directory` unless already known; `due`: when each may go
    /// (nil: now). Returns how many were new.
    @discardableResult
    func offer(_ jobs: [(name: JobName, path: String, size: Int64, due: Double?)]) -> Int {
        locked {
            var added = 0
            for j in jobs where !known.contains(j.path) {
                known.insert(j.path)
                sequence += 1
                let job = QueuedJob(name: j.name, path: j.path, size: j.size, sequence: sequence)
                if let due = j.due, due > clock() { insertTimed(job, due: due) } else { queues[j.name.pool, default: FIFO()].append(job) }
                added += 1
            }
            if added > 0 { condition.broadcast() }
            return added
        }
    }

    func isKnown(_ path: String) -> Bool { locked { known.contains(path) } }

    private func insertTimed(_ job: QueuedJob, due: Double) {
        let i = timetable.firstIndex { $0.due > due } ?? timetable.endIndex
        timetable.insert((due, job), at: i)
    }

    /// Moves timetable entries that are due into their pool queues.
    private func promoteDue(now: Double) {
        var n = 0
        while n < timetable.count && timetable[n].due <= now {
            let job = timetable[n].job
            queues[job.name.pool, default: FIFO()].append(job)
            n += 1
        }
        if n > 0 { timetable.removeFirst(n) }
    }

    /// The oldest due job among the pools a worker serves; waits for one. Returns nil when
    /// the daemon stops, or (draining) when nothing due is left and no job is in hand.
    func take(serving pools: PoolSet, isOpen: () -> Bool = { true }) -> QueuedJob? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopping { return nil }
            let now = clock()
            promoteDue(now: now)
            if isOpen(), let job = popOldest(serving: pools) {
                inHand[job.path] = job
                return job
            }
            if draining && inHand.isEmpty && !hasDueWork(serving: pools) { return nil }
            let nextDue = timetable.first.map { $0.due - now } ?? 1
            condition.wait(until: Date(timeIntervalSinceNow: max(0.01, min(nextDue, 1))))
        }
    }

    private func hasDueWork(serving pools: PoolSet) -> Bool {
        queues.contains { pools.contains($0.key) && !$0.value.isEmpty }
    }

    private func popOldest(serving pools: PoolSet) -> QueuedJob? {
        var best: Pool?
        var bestSequence = UInt64.max
        for (pool, fifo) in queues where pools.contains(pool) {
            if let head = fifo.first, head.sequence < bestSequence {
                best = pool
                bestSequence = head.sequence
            }
        }
        guard let best else { return nil }
        return queues[best]!.popFirst()
    }

    /// The job left the spool (delivered, bounced, quarantined or vanished).
    func finished(_ job: QueuedJob) {
        locked {
            inHand[job.path] = nil
            known.remove(job.path)
            condition.broadcast()
        }
    }

    /// The job stays (now at `path`) and is due again at `due`.
    func reschedule(_ job: QueuedJob, path: String, due: Double) {
        locked {
            inHand[job.path] = nil
            known.remove(job.path)
            var moved = job
            moved.path = path
            known.insert(path)
            if draining {
                // A drain tries each job once: a deferred job is not due again in this run.
                known.remove(path)
            } else {
                insertTimed(moved, due: due)
            }
            condition.broadcast()
        }
    }

    /// The worker could not try the job (relay unreachable, stopping): back to the front.
    func putBack(_ job: QueuedJob) {
        locked {
            inHand[job.path] = nil
            queues[job.name.pool, default: FIFO()].pushFront(job)
            condition.broadcast()
        }
    }

    func stop() {
        locked {
            stopping = true
            condition.broadcast()
        }
    }

    struct Counts: Sendable {
        var queued: [Pool: (jobs: Int, bytes: Int64)] = [:]
        var waitingRetry = 0
        var inHand = 0
    }

    func counts() -> Counts {
        locked {
            var c = Counts()
            for (pool, fifo) in queues where !fifo.isEmpty {
                c.queued[pool] = (fifo.count, fifo.elements.reduce(0) { $0 + $1.size })
            }
            for (_, job) in inHand {
                let prior = c.queued[job.name.pool] ?? (0, 0)
                c.queued[job.name.pool] = (prior.jobs + 1, prior.bytes + job.size)
            }
            c.waitingRetry = timetable.count
            c.inHand = inHand.count
            return c
        }
    }
}
