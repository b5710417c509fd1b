// Every limit of MX resolution, named, with its default: which server to ask (DNS_SERVER),
// how long to wait for it, how long answers live in the cache, how many exchangers to
// look at. Pure values; the resolver reads them and never changes them.

/// `DNS_SERVER=host:port`: the one server to ask, an address literal and a port.
public struct DNSServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16 = 53) {
        self.address = address
        self.port = port
    }

    /// `192.0.2.1`, `192.0.2.1:5353`, `[2001:db8::1]:5353`, `2001:db8::1` (port 53 when
    /// none is given); nil for a host name, a bad address or a bad port.
    public init?(_ text: String) {
        var host = Substring(text)
        var port: UInt16 = 53
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else { return nil }
                port = p
            }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard let p = UInt16(host[host.index(after: colon)...]), p > 0 else { return nil }
            port = p
            host = host[..<colon]
        }
        guard let address = IPAddress(String(host)) else { return nil }
        self.init(address: address, port: port)
    }

    public var description: String { address.description(port: port) }
}

/// Which address families to try, and in what order within one MX host.
public enum AddressPreference: String, Sendable, Hashable {
    case ipv4First, ipv6First, ipv4Only, ipv6Only

    var families: [DNSRecordType] {
        switch self {
        case .ipv4First: return [.a, .aaaa]
        case .ipv6First: return [.aaaa, .a]
        case .ipv4Only: return [.a]
        case .ipv6Only: return [.aaaa]
        }
    }
}

public struct ResolverSettings: Sendable, Hashable {
    /// The server to ask; nil: the system's resolvers (/etc/resolv.conf, read when each
    /// resolver state is made).
    public var server: DNSServerAddress?
    /// How long to wait for each answer (glibc's `retrans`, whole seconds, at least 1;
    /// RES_TIMEOUT is 5 s).
    public var answerTimeout: Duration = .seconds(5)
    /// How many times each server is asked before giving up (glibc's `retry`; RES_DFLRETRY
    /// is 2). One question costs at most about answerTimeout × attempts × servers.
    public var attempts: Int = 2
    /// Stop asking for more exchangers' addresses after this long (the ones found so far are
    /// used; none found is a temporary failure).
    public var resolutionTimeout: Duration = .seconds(60)
    /// Answers are kept for their TTL, but never less than this …
    public var minimumTTL: Duration = .seconds(60)
    /// … nor more than this.
    public var maximumTTL: Duration = .seconds(3600)
    /// How long a negative answer without an SOA is kept (RFC 2308 §5 takes the SOA's).
    public var negativeTTLWithoutSOA: Duration = .seconds(300)
    /// How long "no answer" (timeout, SERVFAIL, network error) is kept, so a dead server
    /// is not asked again for every recipient (RFC 2308 §7 allows up to 5 min); 0: never.
    public var failureTTL: Duration = .seconds(30)
    /// At most this many MX hosts (the most preferred) are looked at.
    public var maximumExchangers: Int = 10
    public var addressPreference: AddressPreference = .ipv4First
    /// At most this many answers in the cache; past it, the ones expiring soonest go.
    public var cacheCapacity: Int = 100_000

    public init(server: DNSServerAddress? = nil) {
        self.server = server
    }

    /// How long `lookup` stays in the cache.
    func lifetime(of lookup: DNSLookup) -> Duration {
        switch lookup {
        case .records(_, let ttl): return clamp(.seconds(ttl))
        case .noData(let ttl), .noSuchDomain(let ttl): return clamp(ttl.map { .seconds($0) } ?? negativeTTLWithoutSOA)
        case .failed: return failureTTL
        }
    }

    private func clamp(_ ttl: Duration) -> Duration {
        min(max(ttl, minimumTTL), maximumTTL)
    }
}
