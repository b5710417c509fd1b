// The daemon's index of jobs: FIFOs of jobs due now, a timetable (heap) of deferred jobs,
// and the jobs in hand. A job is known by its name and its place (queued in the spool, or
// in deferred/), never by a path. Handing a job to a worker never touches the disk, and a
// worker looks only at queues it may take from: due jobs are filed by (pool, earmark,
// size class), so a worker that serves pool A with MAXSIZE=64 never walks past pool B's
// or big jobs. A change wakes only the workers waiting for what changed.
//
// Invariant: a job is in at most one of {a lane, the timetable, in hand}, and `known`
// holds exactly the jobs in those three; a job offered again while known is ignored
// (inotify and the rescan both report every job).
// Memory: a queued job costs its `QueuedJob` (48 bytes, the name inline for names of up to
// 15 bytes) in a lane of fixed-size chunks (no doubling slack, no copy as it grows) and its
// `JobKey` (24 bytes) in `known`: about 120 bytes with the set's spare room.

import SMTPClient
import Dispatch
import SpoolKit
import Synchronization

final class JobQueue: Sendable {
    private struct Lane: Equatable, Sendable {
        var earmark: Int
        var sizeClass: Int
    }

    /// One pool's lanes: (earmark, size class) pairs, few (usually one), searched in order.
    private struct PoolLanes: Sendable {
        var lanes: [(lane: Lane, jobs: ChunkedFIFO<QueuedJob>)] = []
        var jobs = 0
        var bytes: Int64 = 0

        func index(of lane: Lane) -> Int? { lanes.firstIndex { $0.lane == lane } }
    }

    private struct State: Sendable {
        /// Indexed by `JobQueue.slot(of:)`: the default pool, then A...Z.
        var lanes = [PoolLanes](repeating: PoolLanes(), count: Pool.all.count)
        var timetable = Timetable()
        var known: Set<JobKey> = []
        /// Jobs in hand, by their sequence number (unique per offer: a cheap key).
        var inHand: [UInt64: QueuedJob] = [:]
        /// Workers that cannot take jobs now (down, closed, paused, stopped), and since when.
        var unavailableSince: [Int: Double] = [:]
        var sequence: UInt64 = 0
        var stopping = false
        /// Pools on hold (`poolctl hold POOL`): nobody takes their jobs until released.
        var heldPools = PoolSet.none
        var policy: DispatchPolicy
        /// Workers waiting in `take`, with the pools they serve.
        var waiting: [Int: PoolSet] = [:]
        var wakeups: [Int: DispatchSemaphore] = [:]
    }

    private let state: Locked<State>
    private let draining: Bool
    private let clock: WallClock
    private let handedOutCount = Atomic<Int>(0)

    /// Jobs handed to workers so far (the prefetcher keeps a window ahead of it).
    var handedOut: Int { handedOutCount.load(ordering: .relaxed) }

    init(policy: DispatchPolicy, draining: Bool, clock: WallClock = .system) {
        state = Locked(State(policy: policy))
        self.draining = draining
        self.clock = clock
    }

    var policy: DispatchPolicy { state.withLock { $0.policy } }

    /// Adds jobs unless already known. Returns how many were new.
    @discardableResult
    func offer(_ jobs: [JobOffer]) -> Int {
        let (added, wake) = state.withLock { s -> (Int, [DispatchSemaphore]) in
            var added = 0
            var pools = PoolSet.none
            let now = clock.seconds
            for j in jobs {
                let key = JobKey(name: j.name, place: j.place, slice: j.slice)
                guard s.known.insert(key).inserted else { continue }
                s.sequence += 1
                // A merge pass is spread over every worker of its pool: its slices carry no earmark.
                let job = QueuedJob(name: j.name, place: j.place, size: j.size, sequence: s.sequence,
                                    earmark: j.slice == nil ? s.policy.earmark(j.name) : 0, sizeClass: s.policy.sizeClass(j.size),
                                    slice: j.slice)
                if let due = j.due, due > now {
                    s.timetable.insert(job, due: due)
                } else {
                    Self.enqueue(job, in: &s)
                    pools.insert(job.name.pool)
                }
                added += 1
            }
            return (added, Self.waiters(serving: pools, in: &s))
        }
        for w in wake { w.signal() }
        return added
    }

    func isKnown(_ name: JobName, in place: JobPlace) -> Bool {
        state.withLock { $0.known.contains(JobKey(name: name, place: place, slice: nil)) }
    }

    /// A worker says whether it can take jobs now (for strict round-robin hand-over):
    /// unavailable means it has not reached its relay since the time it first said so.
    func setAvailable(_ worker: Int, _ available: Bool) {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            if available {
                guard s.unavailableSince.removeValue(forKey: worker) != nil else { return [] }
            } else {
                guard s.unavailableSince[worker] == nil else { return [] }
                s.unavailableSince[worker] = clock.seconds
            }
            return Self.waiters(serving: .all, in: &s)
        }
        for w in wake { w.signal() }
    }

    enum Taken {
        case job(QueuedJob)
        /// The daemon stops, or (drain) nothing the worker may take is due and no job is in hand.
        case finished
        /// `keepWaiting` said no: the worker's situation changed (a window opened or closed).
        case recheck
    }

    /// Waits for a job `worker` may take. `keepWaiting` is asked before each wait.
    func take(worker: Int, serving pools: PoolSet, keepWaiting: () -> Bool = { true }) -> Taken {
        while true {
            let (taken, wakeup, wait) = state.withLock { s -> (Taken?, DispatchSemaphore, Double) in
                let wakeup = s.wakeups[worker] ?? DispatchSemaphore(value: 0)
                s.wakeups[worker] = wakeup
                if s.stopping { return (.finished, wakeup, 0) }
                let now = clock.seconds
                Self.promoteDue(now: now, in: &s)
                if let job = Self.popNext(worker: worker, pools: pools, now: now, in: &s) {
                    handedOutCount.add(1, ordering: .relaxed)
                    return (.job(job), wakeup, 0)
                }
                if draining && s.inHand.isEmpty { return (.finished, wakeup, 0) }
                s.waiting[worker] = pools
                // Wake for the next due job, and at least once a second: strict round-robin's
                // hand-over and the windows are a matter of time passing, not of events.
                let nextDue = s.timetable.nextDue.map { $0 - now } ?? 1
                return (nil, wakeup, max(0.01, min(nextDue, 1)))
            }
            if let taken { return taken }
            if !keepWaiting() {
                _ = state.withLock { $0.waiting.removeValue(forKey: worker) }
                return .recheck
            }
            _ = wakeup.wait(timeout: .now() + wait)
            _ = state.withLock { $0.waiting.removeValue(forKey: worker) }
        }
    }

    /// A job `worker` may take right now, without waiting.
    func tryTake(worker: Int, serving pools: PoolSet) -> QueuedJob? {
        state.withLock { s in
            if s.stopping { return nil }
            let now = clock.seconds
            Self.promoteDue(now: now, in: &s)
            let job = Self.popNext(worker: worker, pools: pools, now: now, in: &s)
            if job != nil { handedOutCount.add(1, ordering: .relaxed) }
            return job
        }
    }

    /// The job left the spool (delivered, bounced, quarantined or vanished).
    func finished(_ job: QueuedJob) { finished([job]) }

    /// The jobs left the spool (one lock for a batch, as the reaper removes them).
    /// `removed` false: finished, but the file could not be removed; it stays known, so
    /// that no rescan offers it again (the next start removes it).
    func finished(_ jobs: [QueuedJob], removed: Bool = true) {
        guard !jobs.isEmpty else { return }
        let wake = state.withLock { s -> [DispatchSemaphore] in
            for job in jobs {
                s.inHand[job.sequence] = nil
                if removed { s.known.remove(job.key) }
            }
            // A drain ends when nothing is in hand: the waiting workers must see it.
            return draining && s.inHand.isEmpty ? Self.waiters(serving: .all, in: &s) : []
        }
        for w in wake { w.signal() }
    }

    /// The job stays (now in `place`) and is due again at `due`; a drain does not retry it.
    func reschedule(_ job: QueuedJob, to place: JobPlace, due: Double) {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            s.inHand[job.sequence] = nil
            s.known.remove(job.key)
            if !draining {
                var moved = job
                moved.place = place
                s.known.insert(moved.key)
                s.timetable.insert(moved, due: due)
            }
            return draining && s.inHand.isEmpty ? Self.waiters(serving: .all, in: &s) : []
        }
        for w in wake { w.signal() }
    }

    /// The worker could not try the job (relay unreachable, window closed, stopping): it
    /// goes back to the front of its lane.
    func putBack(_ job: QueuedJob) {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            s.inHand[job.sequence] = nil
            Self.enqueue(job, in: &s, front: true)
            var pools = PoolSet.none
            pools.insert(job.name.pool)
            return Self.waiters(serving: pools, in: &s)
        }
        for w in wake { w.signal() }
    }

    /// A new configuration: earmarks and size classes are computed again for every job.
    func replacePolicy(_ newPolicy: DispatchPolicy) {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            s.policy = newPolicy
            let jobs = s.lanes.flatMap { $0.lanes.flatMap { $0.jobs.all } }.sorted { $0.sequence < $1.sequence }
            s.lanes = [PoolLanes](repeating: PoolLanes(), count: Pool.all.count)
            for var job in jobs {
                job.earmark = job.slice == nil ? newPolicy.earmark(job.name) : 0
                job.sizeClass = newPolicy.sizeClass(job.size)
                Self.enqueue(job, in: &s)
            }
            s.timetable.update { job in
                job.earmark = job.slice == nil ? newPolicy.earmark(job.name) : 0
                job.sizeClass = newPolicy.sizeClass(job.size)
            }
            return Self.waiters(serving: .all, in: &s)
        }
        for w in wake { w.signal() }
    }

    /// Deferred jobs become due now (`poolctl flush`); returns how many.
    func flushDeferred() -> Int {
        let (n, wake) = state.withLock { s -> (Int, [DispatchSemaphore]) in
            let jobs = s.timetable.removeAll()
            for job in jobs { Self.enqueue(job, in: &s) }
            return (jobs.count, Self.waiters(serving: .all, in: &s))
        }
        for w in wake { w.signal() }
        return n
    }

    func hold(pool: Pool) { state.withLock { $0.heldPools.insert(pool) } }

    /// The pools `hold(pool:)` stopped, in pool order.
    var heldPools: [Pool] { state.withLock { s in Pool.all.filter { s.heldPools.contains($0) } } }

    func release(pool: Pool) {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            s.heldPools.remove(pool)
            var pools = PoolSet.none
            pools.insert(pool)
            return Self.waiters(serving: pools, in: &s)
        }
        for w in wake { w.signal() }
    }

    /// Takes a queued or deferred (not in hand) job out of the index, for `poolctl hold JOB`.
    func remove(named name: JobName) -> QueuedJob? {
        state.withLock { s in
            for p in s.lanes.indices {
                for l in s.lanes[p].lanes.indices {
                    let jobs = s.lanes[p].lanes[l].jobs.all
                    guard let job = jobs.first(where: { $0.name == name && $0.slice == nil }) else { continue }
                    var kept = ChunkedFIFO<QueuedJob>()
                    for j in jobs where j.key != job.key { kept.append(j) }
                    s.lanes[p].lanes[l].jobs = kept
                    s.lanes[p].jobs -= 1
                    s.lanes[p].bytes -= job.size
                    s.known.remove(job.key)
                    return job
                }
            }
            if let job = s.timetable.remove(where: { $0.name == name && $0.slice == nil }) {
                s.known.remove(job.key)
                return job
            }
            return nil
        }
    }

    func isInHand(named name: JobName) -> Bool { state.withLock { s in s.inHand.values.contains { $0.name == name } } }

    func stop() {
        let wake = state.withLock { s -> [DispatchSemaphore] in
            s.stopping = true
            return Array(s.wakeups.values)
        }
        for w in wake { w.signal() }
    }

    struct Counts: Sendable {
        var queued: [Pool: (jobs: Int, bytes: Int64)] = [:]
        var waitingRetry = 0
        var inHand = 0
    }

    func counts() -> Counts {
        state.withLock { s in
            var c = Counts()
            for (p, pool) in Pool.all.enumerated() where s.lanes[p].jobs > 0 { c.queued[pool] = (s.lanes[p].jobs, s.lanes[p].bytes) }
            for (_, job) in s.inHand {
                let prior = c.queued[job.name.pool] ?? (0, 0)
                c.queued[job.name.pool] = (prior.jobs + 1, prior.bytes + job.size)
            }
            c.waitingRetry = s.timetable.count
            c.inHand = s.inHand.count
            return c
        }
    }

    // MARK: - under the lock

    /// A pool's place in `State.lanes`.
    private static func slot(of pool: Pool) -> Int {
        pool == .default ? 0 : Int(pool.byte - UInt8(ascii: "A")) + 1
    }

    private static func enqueue(_ job: QueuedJob, in s: inout State, front: Bool = false) {
        let p = slot(of: job.name.pool)
        let lane = Lane(earmark: job.earmark, sizeClass: job.sizeClass)
        s.lanes[p].jobs += 1
        s.lanes[p].bytes += job.size
        let l: Int
        if let found = s.lanes[p].index(of: lane) {
            l = found
        } else {
            s.lanes[p].lanes.append((lane, ChunkedFIFO()))
            l = s.lanes[p].lanes.count - 1
        }
        if front {
            s.lanes[p].lanes[l].jobs.pushFront(job)
        } else {
            s.lanes[p].lanes[l].jobs.append(job)
        }
    }

    private static func promoteDue(now: Double, in s: inout State) {
        while let job = s.timetable.popDue(now: now) { enqueue(job, in: &s) }
    }

    /// May `worker` take from a lane earmarked for `owner` in `pool` now?
    private static func mayTake(_ owner: Int, worker: Int, pool: Pool, now: Double, in s: State) -> Bool {
        if owner == 0 || owner == worker { return true }
        guard let since = s.unavailableSince[owner], now - since >= s.policy.roundRobinWait else { return false }
        return s.policy.substitute(for: owner, in: pool) { s.unavailableSince[$0] == nil } == worker
    }

    /// The lane `worker` should take from now (pool slot, lane index): inside each pool the
    /// smallest size bin first, across pools the oldest head.
    private static func pick(worker: Int, pools: PoolSet, now: Double, in s: State) -> (Int, Int)? {
        let maxClass = s.policy.maxClass[worker]
        var best: (pool: Int, lane: Int, sequence: UInt64)?
        for (p, pool) in Pool.all.enumerated() where s.lanes[p].jobs > 0 && pools.contains(pool) && !s.heldPools.contains(pool) {
            var poolBest: (lane: Int, priority: Int, sequence: UInt64)?
            for (l, entry) in s.lanes[p].lanes.enumerated() {
                guard let head = entry.jobs.first else { continue }
                let lane = entry.lane
                if let maxClass, lane.sizeClass > maxClass { continue }
                if !mayTake(lane.earmark, worker: worker, pool: pool, now: now, in: s) { continue }
                let priority = s.policy.priorityOfClass[lane.sizeClass]
                if let b = poolBest, (b.priority, b.sequence) <= (priority, head.sequence) { continue }
                poolBest = (l, priority, head.sequence)
            }
            guard let b = poolBest else { continue }
            if let best, best.sequence <= b.sequence { continue }
            best = (p, b.lane, b.sequence)
        }
        return best.map { ($0.pool, $0.lane) }
    }

    /// Takes the job `pick` chooses out of its lane and into hand.
    private static func popNext(worker: Int, pools: PoolSet, now: Double, in s: inout State) -> QueuedJob? {
        guard let (p, l) = pick(worker: worker, pools: pools, now: now, in: s),
              let job = s.lanes[p].lanes[l].jobs.popFirst() else { return nil }
        s.lanes[p].jobs -= 1
        s.lanes[p].bytes -= job.size
        s.inHand[job.sequence] = job
        return job
    }

    /// The semaphores of the workers waiting for jobs of `pools`, taken off the waiting list.
    private static func waiters(serving pools: PoolSet, in s: inout State) -> [DispatchSemaphore] {
        guard !pools.isEmpty else { return [] }
        var wake: [DispatchSemaphore] = []
        for (worker, serving) in s.waiting where serving.intersects(pools) {
            s.waiting[worker] = nil
            if let w = s.wakeups[worker] { wake.append(w) }
        }
        return wake
    }
}
