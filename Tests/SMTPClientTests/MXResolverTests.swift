// MX resolution (RFC 5321 §5, RFC 7505) against a real DNS server on loopback
// (scripts/relays/dns_server.py): what each kind of domain resolves to, or fails with;
// the shuffling of equal preferences; sites; the cache and its TTL bounds (the clock is
// moved, never slept on); TCP after a truncated answer; DNS_SERVER over IPv6.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import SMTPClient

final class MXResolverTests: XCTestCase {
    static let zone = """
        $TTL 300
        ; preference order, one exchanger with both families
        pref.test.            IN MX 30 mx3.pref.test.
        pref.test.            IN MX 10 mx1.pref.test.
        pref.test.            IN MX 20 mx2.pref.test.
        mx1.pref.test.        IN A 127.0.0.11
        mx2.pref.test.        IN A 127.0.0.12
        mx3.pref.test.        IN A 127.0.0.13
        mx3.pref.test.        IN AAAA ::1
        ; no MX: the domain's own addresses
        aonly.test.           IN A 127.0.0.20
        v6only.test.          IN AAAA 2001:db8::20
        ; an exchanger with an IPv6 address only
        v6mx.test.            IN MX 10 mx.v6mx.test.
        mx.v6mx.test.         IN AAAA 2001:db8::25
        ; RFC 7505
        nullmx.test.          IN MX 0 .
        ; exists, but neither MX nor address
        nomail.test.          IN TXT "no mail here"
        ; the first exchanger has no address (its name does not exist)
        skip.test.            IN MX 10 gone.skip.test.
        skip.test.            IN MX 20 mx.skip.test.
        mx.skip.test.         IN A 127.0.0.30
        ; no exchanger has an address
        dangling.test.        IN MX 10 gone.dangling.test.
        dangling.test.        IN MX 20 noaddr.dangling.test.
        noaddr.dangling.test. IN TXT "no address"
        ; the first exchanger's address lookups fail (SERVFAIL)
        flaky.test.           IN MX 10 dead.flaky.test.
        flaky.test.           IN MX 20 mx.flaky.test.
        mx.flaky.test.        IN A 127.0.0.40
        ; answered only over TCP
        big.test.             IN MX 10 mx.big.test.
        mx.big.test.          IN A 127.0.0.50
        """

    static let servfail = ["broken.test", "dead.flaky.test"]

    enum Expected {
        case resolved(exchangers: [String], addresses: [String], implicit: Bool, skipped: [String] = [])
        case failed(reply: String, permanent: Bool)
    }

    func testEachKindOfDomainResolvesToItsExchangersOrItsFailure() throws {
        let server = try TestDNSServer(zone: Self.zone, servfail: Self.servfail, drop: ["silent.test"])
        let resolver = MXResolver(settings: .testing(server))
        let cases: [(String, Expected, String)] = [
            ("pref.test", .resolved(exchangers: ["mx1.pref.test", "mx2.pref.test", "mx3.pref.test"],
                                    addresses: ["127.0.0.11", "127.0.0.12", "127.0.0.13", "::1"], implicit: false),
             "MX records in preference order, IPv4 before IPv6"),
            ("PREF.Test.", .resolved(exchangers: ["mx1.pref.test", "mx2.pref.test", "mx3.pref.test"],
                                     addresses: ["127.0.0.11", "127.0.0.12", "127.0.0.13", "::1"], implicit: false),
             "case and a trailing dot do not matter"),
            ("aonly.test", .resolved(exchangers: ["aonly.test"], addresses: ["127.0.0.20"], implicit: true),
             "no MX: the domain's A record is an implicit MX"),
            ("v6only.test", .resolved(exchangers: ["v6only.test"], addresses: ["2001:db8::20"], implicit: true),
             "no MX: the domain's AAAA record is an implicit MX"),
            ("v6mx.test", .resolved(exchangers: ["mx.v6mx.test"], addresses: ["2001:db8::25"], implicit: false),
             "an exchanger reachable over IPv6 only"),
            ("skip.test", .resolved(exchangers: ["mx.skip.test"], addresses: ["127.0.0.30"], implicit: false,
                                    skipped: ["gone.skip.test"]),
             "an exchanger without addresses is skipped"),
            ("flaky.test", .resolved(exchangers: ["mx.flaky.test"], addresses: ["127.0.0.40"], implicit: false,
                                     skipped: ["dead.flaky.test"]),
             "an exchanger whose address lookups fail is skipped"),
            ("[127.0.0.60]", .resolved(exchangers: ["[127.0.0.60]"], addresses: ["127.0.0.60"], implicit: true),
             "an address literal needs no DNS"),
            ("nullmx.test", .failed(reply: "556 5.1.10", permanent: true), "null MX"),
            ("nxdomain.test", .failed(reply: "550 5.1.2", permanent: true), "a domain that does not exist"),
            ("nomail.test", .failed(reply: "550 5.1.2", permanent: true), "no MX and no address"),
            ("broken.test", .failed(reply: "451 4.4.3", permanent: false), "SERVFAIL"),
            ("silent.test", .failed(reply: "451 4.4.3", permanent: false), "no answer at all (timeout)"),
            ("dangling.test", .failed(reply: "451 4.4.3", permanent: false), "no exchanger has an address"),
        ]
        for (domain, expected, scenario) in cases {
            let result = Result { () throws(MXResolutionError) in try resolver.resolve(domain) }
            switch (expected, result) {
            case (.resolved(let exchangers, let addresses, let implicit, let skipped), .success(let resolution)):
                XCTAssertEqual(resolution.exchangers.map(\.host), exchangers, scenario)
                XCTAssertEqual(resolution.addresses.map(\.address.description), addresses, scenario)
                XCTAssertEqual(resolution.isImplicit, implicit, scenario)
                XCTAssertEqual(resolution.skipped.map(\.host), skipped, scenario)
            case (.failed(let reply, let permanent), .failure(let error)):
                XCTAssertTrue(error.reply.description.hasPrefix(reply + " "), "\(scenario): \(error.reply)")
                XCTAssertEqual(error.isPermanent, permanent, scenario)
                XCTAssertEqual(error.domain, DomainName.normalized(domain), scenario)
            default:
                XCTFail("\(scenario) (\(domain)): expected \(expected), got \(result)")
            }
        }
    }

    func testARecipientOfANullMXDomainFailsWith556And5110() throws {
        let server = try TestDNSServer(zone: "nullmx.test. 3600 IN MX 0 .\n")
        let resolver = MXResolver(settings: .testing(server))
        XCTAssertThrowsError(try resolver.resolve("nullmx.test")) { error in
            XCTAssertEqual(error as? MXResolutionError, .nullMX(domain: "nullmx.test"))
            XCTAssertEqual((error as? MXResolutionError)?.reply.code, 556)
            XCTAssertEqual((error as? MXResolutionError)?.reply.enhancedStatus, "5.1.10")
        }
    }

    func testEqualPreferencesComeInRandomOrderThatASeedRepeats() throws {
        let zone = (1...4).map { "equal.test. IN MX 10 mx\($0).equal.test.\nmx\($0).equal.test. IN A 127.0.1.\($0)\n" }.joined()
            + "equal.test. IN MX 5 first.equal.test.\nfirst.equal.test. IN A 127.0.1.9\n"
            + "equal.test. IN MX 50 last.equal.test.\nlast.equal.test. IN A 127.0.1.10\n"
        let server = try TestDNSServer(zone: zone)
        func orders(seed: UInt64) throws -> [[String]] {
            let resolver = MXResolver(settings: .testing(server), random: SeededRandom(seed: seed))
            return try (0..<40).map { _ in try resolver.resolve("equal.test").exchangers.map(\.host) }
        }
        let runs = try orders(seed: 42)
        for order in runs {
            XCTAssertEqual(order.first, "first.equal.test", "preference 5 always comes first")
            XCTAssertEqual(order.last, "last.equal.test", "preference 50 always comes last")
            XCTAssertEqual(Set(order[1...4]), Set((1...4).map { "mx\($0).equal.test" }))
        }
        XCTAssertEqual(Set(runs.map { $0[1] }).count, 4, "each of the four equal exchangers comes first at times")
        XCTAssertEqual(try orders(seed: 42), runs, "the same seed gives the same orders")
        XCTAssertNotEqual(try orders(seed: 7), runs, "another seed gives other orders")
        XCTAssertEqual(server.queryCount("equal.test", type: "MX"), 3, "shuffled anew on each resolution, asked once per resolver")
    }

    func testTwoDomainsOnTheSameExchangersShareOneSite() throws {
        let server = try TestDNSServer(zone: """
            one.test.        IN MX 10 MX1.Shared.Test.
            one.test.        IN MX 20 mx2.shared.test.
            two.test.        IN MX 5 mx2.shared.test.
            two.test.        IN MX 50 mx1.shared.test.
            other.test.      IN MX 10 mx1.shared.test.
            mx1.shared.test. IN A 127.0.2.1
            mx2.shared.test. IN A 127.0.2.2
            own.test.        IN A 127.0.2.3
            """)
        let resolver = MXResolver(settings: .testing(server))
        let one = try resolver.resolve("one.test"), two = try resolver.resolve("Two.Test.")
        XCTAssertEqual(one.site, two.site)
        XCTAssertEqual(one.site.hosts, ["mx1.shared.test", "mx2.shared.test"])
        XCTAssertEqual(one.site.description, "mx1.shared.test,mx2.shared.test")
        XCTAssertEqual(one.addresses.map(\.description), ["mx1.shared.test[127.0.2.1]", "mx2.shared.test[127.0.2.2]"])
        XCTAssertEqual(two.addresses.map(\.host), ["mx2.shared.test", "mx1.shared.test"], "each domain keeps its own preferences")
        XCTAssertNotEqual(try resolver.resolve("other.test").site, one.site, "a subset of the exchangers is another site")
        XCTAssertEqual(try resolver.resolve("own.test").site, SiteKey(hosts: ["own.test"]), "an implicit MX is its own site")
    }

    func testATruncatedAnswerIsAskedAgainOverTCP() throws {
        let server = try TestDNSServer(zone: Self.zone, truncate: ["big.test"])
        let resolver = MXResolver(settings: .testing(server))
        let resolution = try resolver.resolve("big.test")
        XCTAssertEqual(resolution.addresses.map(\.address.description), ["127.0.0.50"])
        XCTAssertEqual(server.queries().filter { $0.name == "big.test" }.map(\.transport), ["udp", "tcp"])
    }

    func testACachedAnswerOutlivesTheServerWithinItsTTL() throws {
        let server = try TestDNSServer(zone: "cached.test. 600 IN MX 10 mx.cached.test.\nmx.cached.test. 600 IN A 127.0.3.1\n")
        let clock = ManualClock()
        let resolver = MXResolver(settings: .testing(server), clock: clock)
        let first = try resolver.resolve("cached.test")
        server.stop()
        clock.advance(by: .seconds(590))
        XCTAssertEqual(try resolver.resolve("cached.test"), first, "within the TTL the answer comes from the cache")
        clock.advance(by: .seconds(11))
        XCTAssertThrowsError(try resolver.resolve("cached.test")) { error in
            XCTAssertEqual((error as? MXResolutionError)?.isPermanent, false, "past the TTL the stopped server is asked: \(error)")
        }
    }

    func testTTLsAreClampedBetweenOneMinuteAndOneHour() throws {
        let server = try TestDNSServer(zone: """
            short.test.    5 IN MX 10 mx.short.test.
            mx.short.test. 5 IN A 127.0.4.1
            long.test.     86400 IN MX 10 mx.long.test.
            mx.long.test.  86400 IN A 127.0.4.2
            """)
        let clock = ManualClock()
        let resolver = MXResolver(settings: .testing(server), clock: clock)
        _ = try resolver.resolve("short.test")
        _ = try resolver.resolve("long.test")
        clock.advance(by: .seconds(59))
        _ = try resolver.resolve("short.test")
        XCTAssertEqual(server.queryCount("short.test", type: "MX"), 1, "a 5 s TTL is kept for a minute")
        clock.advance(by: .seconds(2))
        _ = try resolver.resolve("short.test")
        XCTAssertEqual(server.queryCount("short.test", type: "MX"), 2, "and not longer")
        clock.advance(by: .seconds(3600 - 61 - 1))
        _ = try resolver.resolve("long.test")
        XCTAssertEqual(server.queryCount("long.test", type: "MX"), 1, "a one-day TTL is kept for an hour")
        clock.advance(by: .seconds(2))
        _ = try resolver.resolve("long.test")
        XCTAssertEqual(server.queryCount("long.test", type: "MX"), 2, "and not longer")
    }

    func testANonexistentDomainIsRememberedForTheSOAsNegativeTTL() throws {
        let server = try TestDNSServer(zone: "exists.test. IN A 127.0.5.1\n", negativeTTL: 120)
        let clock = ManualClock()
        let resolver = MXResolver(settings: .testing(server), clock: clock)
        for _ in 0..<3 { XCTAssertThrowsError(try resolver.resolve("missing.test")) }
        clock.advance(by: .seconds(119))
        XCTAssertThrowsError(try resolver.resolve("missing.test"))
        XCTAssertEqual(server.queryCount("missing.test"), 1, "NXDOMAIN is cached for the SOA's 120 s")
        clock.advance(by: .seconds(2))
        XCTAssertThrowsError(try resolver.resolve("missing.test")) { error in
            XCTAssertEqual(error as? MXResolutionError, .noSuchDomain(domain: "missing.test"))
        }
        XCTAssertEqual(server.queryCount("missing.test"), 2)
    }

    func testAFailedLookupIsNotRepeatedForEveryRecipientRightAway() throws {
        let server = try TestDNSServer(zone: Self.zone, servfail: Self.servfail)
        let clock = ManualClock()
        let resolver = MXResolver(settings: .testing(server), clock: clock)
        for _ in 0..<5 { XCTAssertThrowsError(try resolver.resolve("broken.test")) }
        XCTAssertEqual(server.queryCount("broken.test"), 1, "a SERVFAIL is remembered for failureTTL")
        clock.advance(by: resolver.settings.failureTTL + .seconds(1))
        XCTAssertThrowsError(try resolver.resolve("broken.test"))
        XCTAssertEqual(server.queryCount("broken.test"), 2)
    }

    func testWorkersResolvingAtOnceShareTheCache() throws {
        let server = try TestDNSServer(zone: Self.zone)
        let resolver = MXResolver(settings: .testing(server))
        let domains = ["pref.test", "aonly.test", "skip.test", "v6mx.test"]
        let expected = try domains.map { try resolver.resolve($0).site }
        resolver.flushCache()
        let results = ResultBox<SiteKey>(count: 64)
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            results.set(i, try? resolver.resolve(domains[i % domains.count]).site)
        }
        XCTAssertEqual(results.all, (0..<64).map { expected[$0 % domains.count] })
        XCTAssertLessThanOrEqual(server.queryCount("pref.test", type: "MX"), 1 + 8, "the cache answers most of them")
    }

    func testDNSServerCanBeAnIPv6Address() throws {
        let server = try TestDNSServer(zone: Self.zone, host: "::1")
        let resolver = MXResolver(settings: .testing(server))
        XCTAssertEqual(server.address.description, "[::1]:\(server.port)")
        XCTAssertEqual(try resolver.resolve("pref.test").exchangers.count, 3)
    }

    func testDNSServerSettingIsAnAddressLiteralAndAPort() {
        let cases: [(String, String?)] = [
            ("127.0.0.1:5353", "127.0.0.1:5353"),
            ("192.0.2.1", "192.0.2.1:53"),
            ("[::1]:5353", "[::1]:5353"),
            ("[2001:db8::1]", "[2001:db8::1]:53"),
            ("2001:db8::1", "[2001:db8::1]:53"),
            ("dns.example.org:53", nil),
            ("127.0.0.1:0", nil),
            ("127.0.0.1:70000", nil),
            ("[::1]5353", nil),
            ("", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(DNSServerAddress(text)?.description, expected, text)
        }
    }

    func testAddressPreferenceOrdersFamiliesWithinAnExchanger() throws {
        let server = try TestDNSServer(zone: Self.zone)
        var settings = ResolverSettings.testing(server)
        settings.addressPreference = .ipv6First
        XCTAssertEqual(try MXResolver(settings: settings).resolve("pref.test").addresses.map(\.address.description),
                       ["127.0.0.11", "127.0.0.12", "::1", "127.0.0.13"])
        settings.addressPreference = .ipv4Only
        XCTAssertThrowsError(try MXResolver(settings: settings).resolve("v6mx.test"), "no exchanger with an IPv4 address")
    }
}

/// Results written from concurrentPerform's threads.
final class ResultBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Value?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Value?) { lock.lock(); values[index] = value; lock.unlock() }
    var all: [Value?] { lock.lock(); defer { lock.unlock() }; return values }
}
