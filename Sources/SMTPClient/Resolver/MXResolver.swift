// RFC 5321 §5 for one recipient domain: its MX records by preference (equal preferences
// in random order), or the domain itself as an implicit MX of preference 0 when it has
// none; the A/AAAA addresses of each exchanger, asked of the same server (so DNS_SERVER
// applies to them too); a null MX (RFC 7505), a domain that does not exist, or no answer
// become MXResolutionErrors. Every answer goes through the shared cache.
//
// One MXResolver serves every worker: it is Sendable, the cache and the random source sit
// behind Mutexes, and the glibc resolver states wait in a pool from which each caller
// borrows one for the length of a question (a state is never used by two threads at once).
//
// Failure policy: NXDOMAIN for the domain and a null MX are permanent; so is "no MX and
// no address" for the domain itself. An exchanger whose addresses cannot be found is
// skipped; when none is left, mail waits (temporary), because a broken MX host is often
// fixed within the queue lifetime.

import Synchronization

public final class MXResolver: Sendable {
    public let settings: ResolverSettings
    private let cache: DNSCache
    private let idleStates = Locked<[ResolverState]>([])
    private let random: Locked<any RandomNumberGenerator>

    /// `clock` drives the cache and the resolution deadline; `random` orders MX records of
    /// equal preference (a seeded generator makes that order repeatable in tests).
    public init(settings: ResolverSettings = ResolverSettings(), clock: any MonotonicClock = SystemMonotonicClock(),
                random: sending any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.settings = settings
        cache = DNSCache(clock: clock, capacity: settings.cacheCapacity)
        self.random = Locked(random)
    }

    /// Where mail for `domain` goes: its exchangers and addresses in the order to try them,
    /// and its site. `domain` may be an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    public func resolve(_ domain: String) throws(MXResolutionError) -> MXResolution {
        let domain = DomainName.normalized(domain)
        if domain.hasPrefix("[") { return try addressLiteral(domain) }
        guard !domain.isEmpty else { throw .noSuchDomain(domain: domain) }

        let isImplicit: Bool
        var exchangers: [MailExchanger]
        let site: SiteKey
        switch lookup(domain, .mx) {
        case .failed(let reason):
            throw .temporary(domain: domain, reason: reason)
        case .noSuchDomain:
            throw .noSuchDomain(domain: domain)
        case .noData:
            isImplicit = true
            exchangers = [MailExchanger(host: domain, preference: 0)]
            site = SiteKey(hosts: [domain])
        case .records(let records, _):
            // "." as exchange is the null MX; beside real ones (a misconfiguration) it is ignored.
            let usable = MXResolver.lowestPreferencePerHost(records).filter { !$0.host.isEmpty }
            guard !usable.isEmpty else { throw .nullMX(domain: domain) }
            isImplicit = false
            site = SiteKey(hosts: usable.map(\.host))
            exchangers = Array(ordered(usable).prefix(max(1, settings.maximumExchangers)))
        }

        let deadline = cache.clock.now().advanced(by: settings.resolutionTimeout)
        var skipped: [SkippedExchanger] = []
        var anyTemporary = false
        for index in exchangers.indices {
            let host = exchangers[index].host
            guard cache.clock.now() < deadline else {
                skipped.append(SkippedExchanger(host: host, reason: "not looked up: resolution took longer than \(settings.resolutionTimeout)"))
                anyTemporary = true
                continue
            }
            let found = addresses(of: host)
            exchangers[index].addresses = found.addresses
            anyTemporary = anyTemporary || found.temporary
            if found.addresses.isEmpty { skipped.append(SkippedExchanger(host: host, reason: found.reasons.joined(separator: "; "))) }
        }
        exchangers.removeAll { $0.addresses.isEmpty }
        guard !exchangers.isEmpty else {
            if isImplicit && !anyTemporary { throw .noAddress(domain: domain) }
            throw .temporary(domain: domain, reason: "no address found for any mail exchanger of \(domain): "
                             + skipped.map { "\($0.host) (\($0.reason))" }.joined(separator: ", "))
        }
        return MXResolution(domain: domain, exchangers: exchangers, isImplicit: isImplicit, site: site, skipped: skipped)
    }

    /// Answers kept in the cache right now (expired ones may be counted until next asked for).
    public var cachedAnswers: Int { cache.count }

    /// Forgets every cached answer.
    public func flushCache() { cache.removeAll() }

    // MARK: - Steps

    /// One exchanger per host name, at its lowest preference (a host listed twice is tried once).
    static func lowestPreferencePerHost(_ records: [DNSRecordData]) -> [MailExchanger] {
        var best: [String: UInt16] = [:]
        var order: [String] = []
        for case .mx(let preference, let host) in records {
            if let known = best[host] {
                best[host] = min(known, preference)
            } else {
                best[host] = preference
                order.append(host)
            }
        }
        return order.compactMap { host in best[host].map { MailExchanger(host: host, preference: $0) } }
    }

    /// By preference; within one preference, in random order (RFC 5321 §5.1).
    private func ordered(_ exchangers: [MailExchanger]) -> [MailExchanger] {
        let byPreference = Dictionary(grouping: exchangers, by: \.preference)
        return random.withLock { generator in
            byPreference.keys.sorted().flatMap { preference in
                var group = (byPreference[preference] ?? []).sorted { $0.host < $1.host }
                group.shuffle(using: &generator)
                return group
            }
        }
    }

    /// The addresses of one exchanger, families in the preferred order, and why there are none.
    private func addresses(of host: String) -> (addresses: [IPAddress], temporary: Bool, reasons: [String]) {
        var found: [IPAddress] = []
        var temporary = false
        var reasons: [String] = []
        for type in settings.addressPreference.families {
            switch lookup(host, type) {
            case .records(let records, _):
                for case .address(let address) in records where (address.family == .v4) == (type == .a) && !found.contains(address) {
                    found.append(address)
                }
            case .failed(let reason):
                temporary = true
                reasons.append(reason)
            case let other:
                reasons.append("\(host)/\(type): \(other.summary)")
            }
        }
        return (found, temporary, reasons)
    }

    private func addressLiteral(_ literal: String) throws(MXResolutionError) -> MXResolution {
        var inner = literal.dropFirst()
        guard inner.hasSuffix("]") else { throw .noSuchDomain(domain: literal) }
        inner = inner.dropLast()
        if inner.hasPrefix("ipv6:") { inner = inner.dropFirst(5) }
        guard let address = IPAddress(String(inner)) else { throw .noSuchDomain(domain: literal) }
        return MXResolution(domain: literal, exchangers: [MailExchanger(host: literal, preference: 0, addresses: [address])],
                            isImplicit: true, site: SiteKey(hosts: [literal]), skipped: [])
    }

    // MARK: - Questions, through the cache

    /// The cached answer, or a fresh one (then cached for its lifetime).
    func lookup(_ name: String, _ type: DNSRecordType) -> DNSLookup {
        let key = DNSCache.Key(name: name, type: type)
        if let cached = cache.lookup(key) { return cached }
        let fresh: DNSLookup
        do throws(DNSQueryFailure) {
            let state = try borrowState()
            defer { idleStates.withLock { $0.append(state) } }
            fresh = DNSLookup(response: try state.ask(name, type: type), question: "\(name)/\(type)")
        } catch {
            fresh = .failed(error.reason)
        }
        cache.store(fresh, for: key, lifetime: settings.lifetime(of: fresh))
        return fresh
    }

    private func borrowState() throws(DNSQueryFailure) -> ResolverState {
        if let idle = idleStates.withLock({ $0.popLast() }) { return idle }
        return try ResolverState(settings: settings)
    }
}
