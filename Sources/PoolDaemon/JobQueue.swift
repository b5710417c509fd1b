// The daemon's index of jobs: FIFOs of jobs due now, a timetable of deferred jobs, and the
// jobs in hand. Handing a job to a worker never touches the disk, and a worker looks only
// at queues it may take from: due jobs are filed by (pool, earmark, size class), so a
// worker that serves pool A with MAXSIZE=64 never walks past pool B's or big jobs.
//
// Invariant: a job path is in at most one of {a queue, the timetable, in hand}, and
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
    /// The worker strict round-robin earmarks it for, 0 for any.
    var earmark: Int = 0
    var sizeClass: Int = 0
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
    var all: ArraySlice<Element> { items[head...] }
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
}

final class JobQueue: @unchecked Sendable {
    private struct Lane: Hashable {
        var earmark: Int
        var sizeClass: Int
    }

    private let condition = NSCondition()
    private var lanes: [Pool: [Lane: FIFO<QueuedJob>]] = [:]
    private var timetable: [(due: Double, job: QueuedJob)] = []  // sorted by due
    private var known: Set<String> = []
    private var inHand: [String: QueuedJob] = [:]
    /// Workers that cannot take jobs now (down, closed, paused, stopped), and since when.
    private var unavailableSince: [Int: Double] = [:]
    /// Jobs and bytes in the lanes per pool, kept as they change (status reads them each second).
    private var laneTotals: [Pool: (jobs: Int, bytes: Int64)] = [:]
    private var sequence: UInt64 = 0
    private var stopping = false
    /// Pools on hold (`poolctl hold POOL`): nobody takes their jobs until released.
    private var heldPools = PoolSet.none
    private let draining: Bool
    private(set) var policy: DispatchPolicy
    private let clock: @Sendable () -> Double

    init(policy: DispatchPolicy, draining: Bool, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.policy = policy
        self.draining = draining
        self.clock = clock
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// Adds jobs unless already known; `due`: when each may go (nil: now). Returns how many were new.
    @discardableResult
    func offer(_ jobs: [(name: JobName, path: String, size: Int64, due: Double?)]) -> Int {
        locked {
            var added = 0
            for j in jobs where !known.contains(j.path) {
                known.insert(j.path)
                sequence += 1
                let job = QueuedJob(name: j.name, path: j.path, size: j.size, sequence: sequence,
                                    earmark: policy.earmark(j.name), sizeClass: policy.sizeClass(j.size))
                if let due = j.due, due > clock() { insertTimed(job, due: due) } else { enqueue(job) }
                added += 1
            }
            if added > 0 { condition.broadcast() }
            return added
        }
    }

    func isKnown(_ path: String) -> Bool { locked { known.contains(path) } }

    private func enqueue(_ job: QueuedJob, front: Bool = false) {
        let total = laneTotals[job.name.pool] ?? (0, 0)
        laneTotals[job.name.pool] = (total.jobs + 1, total.bytes + job.size)
        let lane = Lane(earmark: job.earmark, sizeClass: job.sizeClass)
        if front { lanes[job.name.pool, default: [:]][lane, default: FIFO()].pushFront(job) } else { lanes[job.name.pool, default: [:]][lane, default: FIFO()].append(job) }
    }

    private func insertTimed(_ job: QueuedJob, due: Double) {
        let i = timetable.firstIndex { $0.due > due } ?? timetable.endIndex
        timetable.insert((due, job), at: i)
    }

    private func promoteDue(now: Double) {
        var n = 0
        while n < timetable.count && timetable[n].due <= now {
            enqueue(timetable[n].job)
            n += 1
        }
        if n > 0 { timetable.removeFirst(n) }
    }

    /// A worker says whether it can take jobs now (for strict round-robin hand-over).
    func setAvailable(_ worker: Int, _ available: Bool) {
        locked {
            if available {
                if unavailableSince.removeValue(forKey: worker) != nil { condition.broadcast() }
            } else if unavailableSince[worker] == nil {
                unavailableSince[worker] = clock()
                condition.broadcast()
            }
        }
    }

    /// May `worker` take from a lane earmarked for `owner` in `pool` now?
    private func mayTake(_ owner: Int, worker: Int, pool: Pool, now: Double) -> Bool {
        if owner == 0 || owner == worker { return true }
        guard let since = unavailableSince[owner], now - since >= policy.roundRobinWait else { return false }
        return policy.substitute(for: owner, in: pool) { unavailableSince[$0] == nil } == worker
    }

    /// The job `worker` should take now: inside each pool the smallest size bin first,
    /// across pools the oldest; nil when there is none.
    private func pick(worker: Int, pools: PoolSet, now: Double) -> (Pool, Lane)? {
        let maxClass = policy.maxClass[worker]
        var best: (Pool, Lane, priority: Int, sequence: UInt64)?
        for (pool, poolLanes) in lanes where pools.contains(pool) && !heldPools.contains(pool) {
            var poolBest: (Lane, priority: Int, sequence: UInt64)?
            for (lane, fifo) in poolLanes {
                guard let head = fifo.first else { continue }
                if let maxClass, lane.sizeClass > maxClass { continue }
                if !mayTake(lane.earmark, worker: worker, pool: pool, now: now) { continue }
                let priority = policy.priorityOfClass[lane.sizeClass]
                if poolBest == nil || (priority, head.sequence) < (poolBest!.priority, poolBest!.sequence) {
                    poolBest = (lane, priority, head.sequence)
                }
            }
            if let p = poolBest, best == nil || p.sequence < best!.sequence {
                best = (pool, p.0, p.priority, p.sequence)
            }
        }
        return best.map { ($0.0, $0.1) }
    }

    enum Taken {
        case job(QueuedJob)
        /// The daemon stops, or (drain) nothing the worker may take is due and no job is in hand.
        case finished
        /// `keepWaiting` said no: the worker's situation changed (a window opened or closed).
        case recheck
    }

    /// Waits for a job `worker` may take.
    func take(worker: Int, serving pools: PoolSet, keepWaiting: () -> Bool = { true }) -> Taken {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopping { return .finished }
            if !keepWaiting() { return .recheck }
            let now = clock()
            promoteDue(now: now)
            if let job = popNext(worker: worker, pools: pools, now: now) { return .job(job) }
            if draining && inHand.isEmpty { return .finished }
            let nextDue = timetable.first.map { $0.due - now } ?? 1
            condition.wait(until: Date(timeIntervalSinceNow: max(0.01, min(nextDue, 1))))
        }
    }

    /// A job `worker` may take right now, without waiting.
    func tryTake(worker: Int, serving pools: PoolSet) -> QueuedJob? {
        locked {
            if stopping { return nil }
            let now = clock()
            promoteDue(now: now)
            return popNext(worker: worker, pools: pools, now: now)
        }
    }

    /// Takes the job `pick` chooses out of its lane and into hand (lock held).
    private func popNext(worker: Int, pools: PoolSet, now: Double) -> QueuedJob? {
        guard let (pool, lane) = pick(worker: worker, pools: pools, now: now),
              let job = lanes[pool]![lane]!.popFirst() else { return nil }
        let total = laneTotals[pool]!
        laneTotals[pool] = (total.jobs - 1, total.bytes - job.size)
        inHand[job.path] = job
        return job
    }

    /// The job left the spool (delivered, bounced, quarantined or vanished).
    func finished(_ job: QueuedJob) {
        locked {
            inHand[job.path] = nil
            known.remove(job.path)
            condition.broadcast()
        }
    }

    /// The job stays (now at `path`) and is due again at `due`; a drain does not retry it.
    func reschedule(_ job: QueuedJob, path: String, due: Double) {
        locked {
            inHand[job.path] = nil
            known.remove(job.path)
            if !draining {
                var moved = job
                moved.path = path
                known.insert(path)
                insertTimed(moved, due: due)
            }
            condition.broadcast()
        }
    }

    /// The worker could not try the job (relay unreachable, window closed, stopping).
    /// In a drain a job goes back only while another worker may still take it.
    func putBack(_ job: QueuedJob) {
        locked {
            inHand[job.path] = nil
            enqueue(job, front: true)
            condition.broadcast()
        }
    }

    /// A new configuration: earmarks and size classes are computed again for every job.
    func replacePolicy(_ newPolicy: DispatchPolicy) {
        locked {
            policy = newPolicy
            let jobs = lanes.values.flatMap { $0.values.flatMap { Array($0.all) } }.sorted { $0.sequence < $1.sequence }
            lanes = [:]
            laneTotals = [:]
            for var job in jobs {
                job.earmark = policy.earmark(job.name)
                job.sizeClass = policy.sizeClass(job.size)
                enqueue(job)
            }
            timetable = timetable.map { entry in
                var job = entry.job
                job.earmark = policy.earmark(job.name)
                job.sizeClass = policy.sizeClass(job.size)
                return (entry.due, job)
            }
            condition.broadcast()
        }
    }

    /// Deferred jobs become due now (`poolctl flush`); returns how many.
    func flushDeferred() -> Int {
        locked {
            let n = timetable.count
            for entry in timetable { enqueue(entry.job) }
            timetable.removeAll()
            condition.broadcast()
            return n
        }
    }

    func hold(pool: Pool) { locked { heldPools.insert(pool) } }
    func release(pool: Pool) {
        locked {
            var pools = PoolSet.none
            for p in heldPools.members where p != pool { pools.insert(p) }
            heldPools = pools
            condition.broadcast()
        }
    }

    /// Takes a queued (not in hand) job out of the index, for `poolctl hold JOB`.
    func remove(named name: String) -> QueuedJob? {
        locked {
            for (pool, poolLanes) in lanes {
                for (lane, fifo) in poolLanes {
                    guard let job = fifo.all.first(where: { $0.name.fileName == name }) else { continue }
                    var kept = FIFO<QueuedJob>()
                    for j in fifo.all where j.path != job.path { kept.append(j) }
                    lanes[pool]![lane] = kept
                    let total = laneTotals[pool]!
                    laneTotals[pool] = (total.jobs - 1, total.bytes - job.size)
                    known.remove(job.path)
                    return job
                }
            }
            if let i = timetable.firstIndex(where: { $0.job.name.fileName == name }) {
                let job = timetable.remove(at: i).job
                known.remove(job.path)
                return job
            }
            return nil
        }
    }

    func isInHand(named name: String) -> Bool { locked { inHand.values.contains { $0.name.fileName == name } } }

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
            for (pool, total) in laneTotals where total.jobs > 0 { c.queued[pool] = total }
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
