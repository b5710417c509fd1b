// Questions the daemon and poolctl ask of a configuration: which pools hold jobs no worker
// serves, a worker's strict round-robin places, and the pool a list's mail goes to.
// (Whether a line's TLS and AUTH can be honoured is the daemon's to check, since it knows
// whether it was built with TLS: PoolDaemon/Delivery/RelaySecurity.swift.)

extension SiteConfiguration {
    /// Pools that hold jobs in `spool` but that no worker serves: their mail would wait forever.
    public func unservedPools(in spool: Spool) -> [Pool] {
        unservedPools(among: ((try? spool.jobs()) ?? []).map(\.pool))
    }

    /// Of `pools` (those that hold jobs), the ones no worker serves.
    public func unservedPools(among pools: some Sequence<Pool>) -> [Pool] {
        Set(pools).filter { workers(serving: $0).isEmpty }.sorted()
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
