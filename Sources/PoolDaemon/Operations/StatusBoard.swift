// The workers' live state, updated by each worker under a lock and written by the daemon
// to `.state/status.json` once a second (atomically, without fsync: it is a view, not state).

import SMTPClient
import Foundation
import SpoolKit
import Synchronization

final class StatusBoard: Sendable {
    private let workers: Locked<[Int: WorkerStatus]>

    init(_ specs: [WorkerSpec]) {
        var map: [Int: WorkerStatus] = [:]
        for spec in specs {
            map[spec.id] = WorkerStatus(id: spec.id, host: spec.settings.relay.description,
                                        pools: spec.settings.pools.description, state: .idle)
        }
        workers = Locked(map)
    }

    /// After a reload: entries for the new workers; kept ones keep their counters.
    func replace(with specs: [WorkerSpec], keeping kept: Set<Int>) {
        workers.withLock { map in
            var next: [Int: WorkerStatus] = [:]
            for spec in specs {
                next[spec.id] = kept.contains(spec.id) ? map[spec.id]
                    : WorkerStatus(id: spec.id, host: spec.settings.relay.description, pools: spec.settings.pools.description, state: .idle)
            }
            map = next
        }
    }

    func update(_ id: Int, _ change: (inout WorkerStatus) -> Void) {
        workers.withLock { map in
            if var status = map[id] {
                let before = status.state
                change(&status)
                if status.state != before && status.since == map[id]?.since {
                    status.since = Date().timeIntervalSince1970
                }
                map[id] = status
            }
        }
    }

    var all: [WorkerStatus] { workers.withLock { $0.values.sorted { $0.id < $1.id } } }

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
        snapshot.workers = all
        snapshot.merges = merges.isEmpty ? nil : merges
        snapshot.sites = sites.isEmpty ? nil : sites
        snapshot.shares = shares.isEmpty ? nil : shares
        return snapshot
    }
}
