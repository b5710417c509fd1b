// The answers every worker shares: one DNSLookup per (name, type), kept until its
// lifetime (the TTL clamped by ResolverSettings) has passed on the injected clock, so
// tests move time instead of sleeping. Thread-safe (one Mutex); never more than
// `capacity` entries: past it, expired ones go first, then those expiring soonest
// (down to 90 % of the capacity).

import Synchronization

/// The monotonic time the cache (and the resolution deadline) reads.
public protocol MonotonicClock: Sendable {
    func now() -> ContinuousClock.Instant
}

/// The process's monotonic clock.
public struct SystemMonotonicClock: MonotonicClock {
    public init() {}
    public func now() -> ContinuousClock.Instant { ContinuousClock.now }
}

final class DNSCache: Sendable {
    struct Key: Hashable, Sendable {
        var name: String
        var type: DNSRecordType
    }

    private struct Entry: Sendable {
        var lookup: DNSLookup
        var expires: ContinuousClock.Instant
    }

    let clock: any MonotonicClock
    let capacity: Int
    private let entries = Locked<[Key: Entry]>([:])

    init(clock: any MonotonicClock, capacity: Int) {
        self.clock = clock
        self.capacity = max(1, capacity)
    }

    /// The answer for `key` while it lives; nil when there is none or it expired.
    func lookup(_ key: Key) -> DNSLookup? {
        let now = clock.now()
        return entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.expires <= now {
                entries[key] = nil
                return nil
            }
            return entry.lookup
        }
    }

    /// Keeps `lookup` for `lifetime` (nothing is kept for a lifetime of zero or less).
    func store(_ lookup: DNSLookup, for key: Key, lifetime: Duration) {
        guard lifetime > .zero else { return }
        let now = clock.now()
        let entry = Entry(lookup: lookup, expires: now.advanced(by: lifetime))
        entries.withLock { entries in
            entries[key] = entry
            guard entries.count > capacity else { return }
            entries = entries.filter { $0.value.expires > now }
            if entries.count > capacity {
                // Down to 90 %, so a full cache sorts once per many answers, not on each.
                let soonest = entries.sorted { $0.value.expires < $1.value.expires }.prefix(entries.count - capacity * 9 / 10)
                for (key, _) in soonest { entries[key] = nil }
            }
        }
    }

    var count: Int { entries.withLock { $0.count } }

    func removeAll() { entries.withLock { $0.removeAll() } }
}
