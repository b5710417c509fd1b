// Who may take which job (MISSION.md, "Worker lines"; the scheduling issue): a job's pool
// comes from its name; strict round-robin earmarks a job with spool id k for the worker
// w with k ≡ w (mod N) among the N workers that serve its pool; SIZE_BINS put small jobs
// first inside a pool; MAXSIZE keeps a worker to small jobs. All of it is computed once
// from the configuration, so taking a job costs no more than a look at a few queue heads.

import SpoolKit

struct DispatchPolicy: Sendable {
    /// Workers serving each pool, in id order (config order after expanding x*).
    let workersByPool: [Pool: [Int]]
    let strictRoundRobin: Bool
    /// How long an earmarked job waits for an unavailable worker before the next live one
    /// takes it (0 in a drain: one pass, nobody to wait for).
    let roundRobinWait: Double
    /// Upper bounds (bytes) of the size classes: SIZE_BINS and every MAXSIZE, sorted.
    let sizeEdges: [Int64]
    /// For each size class, its SIZE_BINS bin (the priority inside a pool).
    let priorityOfClass: [Int]
    /// For each worker with MAXSIZE, the largest size class it may take.
    let maxClass: [Int: Int]

    init(_ config: SiteConfiguration, draining: Bool) {
        var byPool: [Pool: [Int]] = [:]
        for pool in Pool.all { byPool[pool] = config.workers(serving: pool).map(\.id) }
        workersByPool = byPool
        strictRoundRobin = config.strictRoundRobin
        roundRobinWait = draining ? 0 : config.strictRoundRobinWait
        let bins = config.sizeBinsKB.map { Int64($0) * 1024 }
        let limits = config.workers.compactMap { $0.settings.maxSizeKB }.map { Int64($0) * 1024 }
        let edges = Array(Set(bins + limits)).sorted()
        sizeEdges = edges
        priorityOfClass = (0...edges.count).map { c in
            // the class's upper bound (or infinity) falls in the first bin that holds it
            let upper = c < edges.count ? edges[c] : Int64.max
            return bins.firstIndex { upper <= $0 } ?? bins.count
        }
        var maxClass: [Int: Int] = [:]
        for w in config.workers {
            if let kb = w.settings.maxSizeKB { maxClass[w.id] = edges.firstIndex(of: Int64(kb) * 1024)! }
        }
        self.maxClass = maxClass
    }

    func sizeClass(_ size: Int64) -> Int { sizeEdges.firstIndex { size <= $0 } ?? sizeEdges.count }

    /// The worker a job is earmarked for under strict round-robin, or 0 (any worker).
    func earmark(_ name: JobName) -> Int {
        guard strictRoundRobin, let k = name.spoolID, let serving = workersByPool[name.pool], !serving.isEmpty else { return 0 }
        let n = UInt64(serving.count)
        let w = Int(k % n == 0 ? n : k % n)  // 1-based place among the pool's workers
        return serving[w - 1]
    }

    /// For `pool`, the live worker that takes over the jobs of unavailable worker `owner`:
    /// the next available one after it in the pool's order.
    func substitute(for owner: Int, in pool: Pool, isAvailable: (Int) -> Bool) -> Int? {
        guard let serving = workersByPool[pool], let i = serving.firstIndex(of: owner) else { return nil }
        for step in 1..<max(serving.count, 1) {
            let candidate = serving[(i + step) % serving.count]
            if isAvailable(candidate) { return candidate }
        }
        return nil
    }
}
