// What resolving a mail domain gives (RFC 5321 §5): its exchangers in the order to try
// them, every address of every exchanger in that order, and the site (the set of its MX
// host names) that groups domains hosted on the same exchangers; or why mail for it
// cannot go now (temporary) or ever (permanent), with the SMTP reply that says so.
// Pure values.

/// The key that groups domains by destination: the set of their MX host names, lowercased,
/// without trailing dots, sorted. Two domains with the same exchangers share a site; a
/// domain without MX records (implicit MX) is its own site.
public struct SiteKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let hosts: [String]

    public init<Hosts: Sequence>(hosts: Hosts) where Hosts.Element == String {
        self.hosts = Array(Set(hosts.map(DomainName.normalized))).sorted()
    }

    /// The hosts joined by commas: `mx1.example.org,mx2.example.org`.
    public var description: String { hosts.joined(separator: ",") }

    public static func < (a: SiteKey, b: SiteKey) -> Bool { a.hosts.lexicographicallyPrecedes(b.hosts) }
}

/// One MX host, its preference, and its addresses (in the order to try them).
public struct MailExchanger: Sendable, Hashable {
    public var host: String
    public var preference: UInt16
    public var addresses: [IPAddress]

    public init(host: String, preference: UInt16, addresses: [IPAddress] = []) {
        self.host = host
        self.preference = preference
        self.addresses = addresses
    }
}

/// One place to try: an address, and the MX host it belongs to (for logs, EHLO checks and
/// the TLS server name).
public struct ExchangerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var address: IPAddress

    public init(host: String, address: IPAddress) {
        self.host = host
        self.address = address
    }

    public var description: String { "\(host)[\(address)]" }
}

public struct MXResolution: Sendable, Hashable {
    /// The domain asked about, normalized (lowercased, no trailing dot).
    public var domain: String
    /// Exchangers with at least one address, by preference; equal preferences in random order.
    public var exchangers: [MailExchanger]
    /// True when the domain has no MX records and its own address stands in (preference 0).
    public var isImplicit: Bool
    public var site: SiteKey
    /// Exchangers passed over because none of their addresses could be found, and why.
    public var skipped: [SkippedExchanger]

    /// Every address of every exchanger, in exchanger order, each address once: try them in
    /// this order until one answers.
    public var addresses: [ExchangerAddress] {
        var seen = Set<IPAddress>()
        return exchangers.flatMap { exchanger in
            exchanger.addresses.compactMap { seen.insert($0).inserted ? ExchangerAddress(host: exchanger.host, address: $0) : nil }
        }
    }
}

/// An MX host without a usable address, and why ("mx2.example.org/A: no record; …").
public struct SkippedExchanger: Sendable, Hashable {
    public var host: String
    public var reason: String
}

/// Why mail for a domain cannot go to its exchangers.
public enum MXResolutionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// RFC 7505: the domain's only MX is `0 .`; it accepts no mail. Permanent.
    case nullMX(domain: String)
    /// NXDOMAIN for the domain. Permanent.
    case noSuchDomain(domain: String)
    /// No MX records, and the domain itself has no address (both A and AAAA answered "no
    /// such record"): nothing to deliver to. Permanent.
    case noAddress(domain: String)
    /// No answer, or no exchanger whose address could be found: try again later.
    case temporary(domain: String, reason: String)

    public var domain: String {
        switch self {
        case .nullMX(let d), .noSuchDomain(let d), .noAddress(let d), .temporary(let d, _): return d
        }
    }

    public var isPermanent: Bool {
        if case .temporary = self { return false }
        return true
    }

    /// The reply to record for the recipients of this domain (and to put in a DSN).
    public var reply: SMTPReply {
        switch self {
        case .nullMX(let domain):
            return SMTPReply(556, "5.1.10 Recipient address has null MX (\(domain) accepts no mail, RFC 7505)")
        case .noSuchDomain(let domain):
            return SMTPReply(550, "5.1.2 Domain \(domain) does not exist (NXDOMAIN)")
        case .noAddress(let domain):
            return SMTPReply(550, "5.1.2 Domain \(domain) has no MX record and no address")
        case .temporary(_, let reason):
            return SMTPReply(451, "4.4.3 \(reason)")
        }
    }

    public var description: String { reply.description }
}

/// Domain names as poold compares them.
public enum DomainName {
    /// Lowercased, without the trailing dot: `MX1.Example.ORG.` → `mx1.example.org`;
    /// the root (`.`) → "".
    public static func normalized(_ name: String) -> String {
        (name.hasSuffix(".") ? String(name.dropLast()) : name).lowercased()
    }
}
