// The workers' live state, written by the daemon to `.state/status.json` once a second
// (atomically, without fsync: it is a view, not state). Each worker updates its own slot,
// behind a lock of its own, several times per message; the only other party that takes
// that lock is the status writer, once a second. So workers never wait for each other
// here (one lock shared by all of them was where 16 workers spent their time).
// The list of slots changes only at a reload.

import SMTPClient
import Foundation
import SpoolKit
import Synchronization

final class StatusBoard: Sendable {
    /// One worker's status.
    final class Slot: Sendable {
        let id: Int
        private let status: Locked<WorkerStatus>

        init(_ status: WorkerStatus) {
            id = status.id
            self.status = Locked(status)
        }

        /// The same, called as on the board: `id` is this slot's worker.
        func update(_ id: Int, _ change: (inout WorkerStatus) -> Void) {
            assert(id == self.id, "worker \(id) writes to the slot of worker \(self.id)")
            update(change)
        }

        /// Changes the status; a change of state stamps `since` unless `change` set it.
        func update(_ change: (inout WorkerStatus) -> Void) {
            status.withLock { status in
                let before = status.state
                let since = status.since
                change(&status)
                if status.state != before && status.since == since {
                    status.since = Date().timeIntervalSince1970
                }
            }
        }

        var current: WorkerStatus { status.withLock { $0 } }
    }

    private let slots: Locked<[Int: Slot]>
    /// Slots a reload took off the board: their counts still belong in the day's totals.
    private let retired = Locked<[Slot]>([])

    init(_ specs: [WorkerSpec]) {
        var map: [Int: Slot] = [:]
        for spec in specs { map[spec.id] = StatusBoard.freshSlot(spec) }
        slots = Locked(map)
    }

    private static func freshSlot(_ spec: WorkerSpec) -> Slot {
        Slot(WorkerStatus(id: spec.id, host: spec.settings.relay.description, pools: spec.settings.pools.description, state: .idle))
    }

    /// After a reload: slots for the new workers; kept ones keep theirs (and their counters).
    func replace(with specs: [WorkerSpec], keeping kept: Set<Int>) {
        slots.withLock { map in
            var next: [Int: Slot] = [:]
            for spec in specs {
                next[spec.id] = kept.contains(spec.id) ? map[spec.id] ?? StatusBoard.freshSlot(spec) : StatusBoard.freshSlot(spec)
            }
            let dropped = map.filter { id, slot in next[id] !== slot }.map(\.value)
            retired.withLock { $0 += dropped }
            map = next
        }
    }

    /// The slot worker `id` writes to (a worker looks it up once, when it is made). A worker
    /// the board does not list (retired by a reload meanwhile) gets a slot nobody reads.
    func slot(for id: Int) -> Slot {
        slots.withLock { $0[id] } ?? Slot(WorkerStatus(id: id, host: "", pools: "", state: .idle))
    }

    /// Changes worker `id`'s status (for callers without the slot at hand).
    func update(_ id: Int, _ change: (inout WorkerStatus) -> Void) {
        slots.withLock { $0[id] }?.update(change)
    }

    var all: [WorkerStatus] {
        slots.withLock { $0.sorted { $0.key < $1.key }.map(\.value) }.map(\.current)
    }

    /// Recipients delivered, deferred and failed since the start, by every worker the daemon
    /// has had (those a reload replaced included).
    var totals: (delivered: Int, deferred: Int, failed: Int) {
        (all + retired.withLock { $0 }.map(\.current)).reduce(into: (0, 0, 0)) {
            $0.0 += $1.delivered; $0.1 += $1.deferred; $0.2 += $1.failed
        }
    }

    func snapshot(queue: JobQueue, spool: Spool, started: Double, merges: [MergeProgress], sites: [SiteStatus],
                  shares: [ShareStatus]) -> StatusSnapshot {
        var snapshot = StatusSnapshot(daemon: "running")
        snapshot.pid = getpid()
        snapshot.started = started
        snapshot.updated = Date().timeIntervalSince1970
        let counts = queue.counts()
        for (pool, c) in counts.queued { snapshot.pools[pool.description] = PoolCount(queued: c.jobs, bytes: c.bytes) }
        snapshot.deferred = counts.waitingRetry
        snapshot.bad = spool.badJobs().count
        snapshot.held = spool.heldJobs().count
        let heldPools = queue.heldPools
        snapshot.heldPools = heldPools.isEmpty ? nil : heldPools.map(\.description)
        snapshot.workers = all
        snapshot.merges = merges.isEmpty ? nil : merges
        snapshot.sites = sites.isEmpty ? nil : sites
        snapshot.shares = shares.isEmpty ? nil : shares
        return snapshot
    }
}
