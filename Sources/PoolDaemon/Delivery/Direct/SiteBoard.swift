// Direct delivery's sites and bins (MISSION.md, "Direct delivery to MX hosts"): recipients
// are grouped by the set of mail exchangers of their domain (a site), and each site has a
// bin of parts waiting for it, filled from every due job. A worker of an MX line leases the
// site whose bin has waited longest among those that may take another connection, and
// delivers from that bin until it is empty or the connection has carried
// MX_SITE_MESSAGES messages. Feedback, as Postfix's queue manager does it: a site whose
// every address failed rests (`Limits.siteRest`) and what waits for it is deferred; a 421 or
// a 4.7.x reply after the greeting throttles the site to one connection, with a pause
// between connections (`Limits.siteThrottle`), rather than hopping to its other exchangers.
// Invariant: a bin entry is a part its job has not sent or decided; a site's connection
// count is the leases out on it, never above its cap.

import SMTPClient
import SpoolKit

/// A part of a job waiting for its site.
struct BinEntry: Sendable {
    let job: DirectJob
    let part: Int
    /// When it joined the bin (wall clock): the oldest waits least.
    let since: Double
}

/// A worker's right to one connection to a site.
struct SiteLease: Sendable {
    let site: SiteKey
    let addresses: [ExchangerAddress]
}

final class SiteBoard: Sendable {
    private struct Site {
        var addresses: [ExchangerAddress]
        var bin = FIFO<BinEntry>()
        var recipients = 0
        var connections = 0
        /// Not to be connected before this time (a rest, or a throttled site's pause).
        var idleUntil = 0.0
        /// One connection at most until this time.
        var throttledUntil = 0.0
        var resting = false
        var lastReply: String?
        var tls: String?
        var delivered = 0
        var deferred = 0
        var failed = 0
    }

    private let sites = Locked<[SiteKey: Site]>([:])
    let maxConnections: Int
    let clock: WallClock

    init(maxConnections: Int, clock: WallClock) {
        self.maxConnections = maxConnections
        self.clock = clock
    }

    /// Adds part `part` of `job`, `recipients` strong, to the bin of `site`.
    func add(_ job: DirectJob, part: Int, recipients: Int, site: SiteKey, addresses: [ExchangerAddress]) {
        let now = clock.seconds
        sites.withLock { all in
            all[site, default: Site(addresses: addresses)].bin.append(BinEntry(job: job, part: part, since: now))
            all[site]?.addresses = addresses
            all[site]?.recipients += recipients
        }
    }

    /// Is `site` resting now (every address failed a moment ago)?
    func isResting(_ site: SiteKey) -> Bool {
        let now = clock.seconds
        return sites.withLock { ($0[site]?.resting ?? false) && now < ($0[site]?.idleUntil ?? 0) }
    }

    /// The site whose bin has waited longest among those that may take a connection now.
    func lease() -> SiteLease? {
        let now = clock.seconds
        return sites.withLock { all in
            var best: (key: SiteKey, since: Double)?
            for (key, site) in all {
                guard let head = site.bin.first, now >= site.idleUntil else { continue }
                let cap = now < site.throttledUntil ? 1 : maxConnections
                guard site.connections < cap else { continue }
                if let b = best, b.since <= head.since { continue }
                best = (key, head.since)
            }
            guard let key = best?.key, var site = all[key] else { return nil }
            site.connections += 1
            site.resting = false
            all[key] = site
            return SiteLease(site: key, addresses: site.addresses)
        }
    }

    /// The next part for a leased connection.
    func next(for lease: SiteLease) -> BinEntry? {
        sites.withLock { all in
            guard let entry = all[lease.site]?.bin.popFirst() else { return nil }
            return entry
        }
    }

    /// Puts a part back at the front of its site's bin (its transaction goes again).
    func putBack(_ entry: BinEntry, site: SiteKey) {
        sites.withLock { $0[site]?.bin.pushFront(entry) }
    }

    /// A leased connection is over.
    func release(_ lease: SiteLease, tls: String?) {
        sites.withLock { all in
            guard var site = all[lease.site] else { return }
            site.connections = max(0, site.connections - 1)
            if let tls { site.tls = tls }
            all[lease.site] = site
        }
    }

    /// Every address of the site failed: it rests, and what waits for it is handed back to
    /// be deferred (its mail stays queued, not bounced).
    func rest(_ lease: SiteLease, reason: String) -> [BinEntry] {
        let until = clock.seconds + Limits.siteRest
        return sites.withLock { all in
            guard var site = all[lease.site] else { return [] }
            site.connections = max(0, site.connections - 1)
            site.resting = true
            site.idleUntil = until
            site.lastReply = reason
            var waiting: [BinEntry] = []
            while let entry = site.bin.popFirst() { waiting.append(entry) }
            site.recipients = 0
            all[lease.site] = site
            return waiting
        }
    }

    /// A 421 or a 4.7.x after the greeting: one connection at a time for a while, and a
    /// pause before the next.
    func throttle(_ site: SiteKey, reply: String) {
        let now = clock.seconds
        sites.withLock { all in
            all[site]?.throttledUntil = now + Limits.siteThrottle
            all[site]?.idleUntil = now + Limits.siteThrottlePause
            all[site]?.lastReply = reply
        }
    }

    /// A transaction's end at a site, for status.
    func note(_ site: SiteKey, recipients: Int, delivered: Int, deferred: Int, failed: Int, reply: String?) {
        sites.withLock { all in
            guard var s = all[site] else { return }
            s.recipients = max(0, s.recipients - recipients)
            s.delivered += delivered
            s.deferred += deferred
            s.failed += failed
            if let reply { s.lastReply = reply }
            all[site] = s
        }
    }

    /// Parts wait in some bin.
    var hasWaiting: Bool { sites.withLock { $0.values.contains { !$0.bin.isEmpty } } }

    /// `lease()` would give a site now.
    var hasLeasable: Bool {
        let now = clock.seconds
        return sites.withLock { all in
            all.values.contains { site in
                !site.bin.isEmpty && now >= site.idleUntil && site.connections < (now < site.throttledUntil ? 1 : maxConnections)
            }
        }
    }

    /// The busiest sites, for status.
    func snapshot(limit: Int = 20) -> [SiteStatus] {
        let now = clock.seconds
        return sites.withLock { all in
            all.map { key, site in
                let state = site.resting && now < site.idleUntil ? "resting" : now < site.throttledUntil ? "throttled"
                    : site.connections > 0 ? "sending" : site.bin.isEmpty ? "idle" : "waiting"
                return SiteStatus(site: key.description, queued: site.recipients, connections: site.connections, state: state,
                                  lastReply: site.lastReply, tls: site.tls, delivered: site.delivered, deferred: site.deferred, failed: site.failed)
            }
            .sorted { ($0.queued, $0.connections, $0.site) > ($1.queued, $1.connections, $1.site) }
            .prefix(limit).map { $0 }
        }
    }
}
