// Options the grammar accepts but this build cannot honour yet. poold refuses to start
// with them (and `poolctl check` says so) rather than ignore a limit the operator relies
// on. (TLS and AUTH are checked by the daemon itself, which knows whether it was built
// with TLS: PoolDaemon/RelaySecurity.swift.)

extension SiteConfiguration {
    /// Pools that hold jobs in `spool` but that no worker serves: their mail would wait forever.
    public func unservedPools(in spool: Spool) -> [Pool] {
        let pools = Set(((try? spool.jobs()) ?? []).map(\.pool))
        return pools.filter { workers(serving: $0).isEmpty }.sorted()
    }

    /// Strict round-robin places of a worker, e.g. `A:1/2 -:1/3` (pool, place, workers of the pool).
    public func roundRobinPlaces(worker id: Int) -> String? {
        guard strictRoundRobin else { return nil }
        var parts: [String] = []
        for pool in Pool.all {
            let serving = workers(serving: pool).map(\.id)
            if let i = serving.firstIndex(of: id) { parts.append("\(pool):\(i + 1)/\(serving.count)") }
        }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// The pool `poolctl submit --list NAME [--admin]` uses: the list's LIST_POOL_ line,
    /// else DEFAULT_LIST_POOL, else the default pool.
    public func pool(forList name: String, admin: Bool) -> Pool {
        if let pools = listPools[name.uppercased()] { return admin ? pools.admin : pools.posting }
        return defaultListPool ?? .default
    }
}
