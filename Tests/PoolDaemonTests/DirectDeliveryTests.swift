// Direct delivery to MX hosts (SMTP_FORWARD_n=MX) against a real DNS server on a loopback
// port and recording SMTP servers on loopback addresses 127.0.0.2, .3, … (all on one free
// port: MX_PORT): each recipient gets its right outcome, exactly once, at the right host.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class DirectDeliveryTests: XCTestCase {
    static let zone = """
        $TTL 300
        one.test.          IN MX 10 down.mx.test.
        one.test.          IN MX 20 up.mx.test.
        down.mx.test.      IN A 127.0.0.9
        up.mx.test.        IN A 127.0.0.2
        alpha.test.        IN MX 10 shared.mx.test.
        beta.test.         IN MX 10 shared.mx.test.
        shared.mx.test.    IN A 127.0.0.3
        plain.test.        IN A 127.0.0.4
        nullmx.test.       IN MX 0 .
        slow.test.         IN MX 10 slow1.mx.test.
        slow.test.         IN MX 20 slow2.mx.test.
        slow1.mx.test.     IN A 127.0.0.5
        slow2.mx.test.     IN A 127.0.0.6
        dead.test.         IN MX 10 dead1.mx.test.
        dead.test.         IN MX 20 dead2.mx.test.
        dead1.mx.test.     IN A 127.0.0.7
        dead2.mx.test.     IN A 127.0.0.8

        """

    func job(_ recipients: [String], tag: String) -> [UInt8] {
        JobWriter.bsmtp(message: Array("From: list@lists.example.org\r\nSubject: \(tag)\r\nX-Test-Id: \(tag)\r\n\r\nhello\r\n".utf8),
                        from: "owner@lists.example.org", to: recipients)
    }

    /// Servers by address: recorders at .2, .3, .4 and .6; the throttling fault server at .5;
    /// nothing at .7, .8, .9.
    func lab(_ fixture: SpoolFixture, workers: Int = 3, extra: [String] = []) throws -> (dns: DNSZone, servers: [String: RecordingRelay], port: UInt16) {
        let dns = try DNSZone(Self.zone, in: fixture.directory)
        let port = freePort()
        var servers: [String: RecordingRelay] = [:]
        for last in [2, 3, 4, 6] {
            servers["127.0.0.\(last)"] = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"], label: "mx\(last)",
                                                            host: "127.0.0.\(last)", port: port)
        }
        servers["127.0.0.5"] = try RecordingRelay(in: fixture.directory, script: "fault_server.py",
                                                  arguments: ["--fault", "mail:reply:421 4.7.0 slow down", "--fault-repeat"],
                                                  label: "mx5", host: "127.0.0.5", port: port)
        try fixture.configure(["SMTP_FORWARD_1=\(workers)*MX", dns.setting, "MX_PORT=\(port)", "HELO_NAME=lists.example.org",
                               "RETRY_SCHEDULE=10m"] + extra)
        return (dns, servers, port)
    }

    func testEachRecipientGetsItsRightOutcomeOnceAtTheRightHost() throws {
        let fixture = try SpoolFixture("mx")
        let (dns, servers, _) = try lab(fixture)
        defer { dns.stop(); servers.values.forEach { $0.stop() } }
        try fixture.drop("A1.MAIL", job(["a@one.test", "b@alpha.test", "c@beta.test", "d@plain.test", "e@nullmx.test", "f@nowhere.test",
                                         "g@dead.test"], tag: "mix"))
        try fixture.drain()
        // one.test's first exchanger is down: its second took the mail.
        XCTAssertEqual(try servers["127.0.0.2"]?.records().flatMap(\.rcpt_tos), ["a@one.test"])
        // alpha.test and beta.test share their exchanger: one site, one transaction.
        XCTAssertEqual(try servers["127.0.0.3"]?.records().map { $0.rcpt_tos.sorted() }, [["b@alpha.test", "c@beta.test"]])
        // plain.test has no MX: its own address is the implicit one.
        XCTAssertEqual(try servers["127.0.0.4"]?.records().flatMap(\.rcpt_tos), ["d@plain.test"])
        // The null MX and the domain that does not exist fail (their DSN, for a sender whose
        // domain this DNS does not know, fails in turn and, having the null sender, ends there).
        // g@dead.test: every address refused: deferred, not bounced; the job waits for it.
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        let journal = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: fixture.spool.stateDirectory).first { $0.hasPrefix("A1.MAIL.") })
        let text = try String(contentsOfFile: fixture.spool.stateDirectory + "/" + journal, encoding: .utf8)
        XCTAssertTrue(text.contains("F 0 4 556 5.1.10"), text)
        XCTAssertTrue(text.contains("F 0 5 550 5.1.2"), text)
        XCTAssertTrue(text.contains("T 0 6 "), text)
        for server in servers.values { XCTAssertTrue(try server.records().allSatisfy { $0.rcpt_tos.count == Set($0.rcpt_tos).count }) }
    }

    func testNullMXAndANonexistentDomainBounceWith5110And512() throws {
        let fixture = try SpoolFixture("mxdsn")
        let (dns, servers, _) = try lab(fixture)
        defer { dns.stop(); servers.values.forEach { $0.stop() } }
        // The DSN goes back to a sender whose domain the lab's DNS knows (plain.test).
        let message = Array("Subject: x\r\nX-Test-Id: dsn\r\n\r\nhello\r\n".utf8)
        try fixture.drop("A2.MAIL", JobWriter.bsmtp(message: message, from: "owner@plain.test", to: ["e@nullmx.test", "f@nowhere.test"]))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let reports = try XCTUnwrap(servers["127.0.0.4"]).records().filter { $0.mail_from == "<>" || $0.mail_from.isEmpty }
        XCTAssertEqual(reports.map(\.rcpt_tos), [["owner@plain.test"]])
        let report = String(decoding: reports.first?.data ?? [], as: UTF8.self)
        XCTAssertTrue(report.contains("Final-Recipient: rfc822; e@nullmx.test") && report.contains("Status: 5.1.10"), report)
        XCTAssertTrue(report.contains("Final-Recipient: rfc822; f@nowhere.test") && report.contains("Status: 5.1.2"), report)
    }

    func testASiteThatSays421AfterTheGreetingIsThrottledNotHoppedAround() throws {
        let fixture = try SpoolFixture("mx421")
        let (dns, servers, _) = try lab(fixture)
        defer { dns.stop(); servers.values.forEach { $0.stop() } }
        try fixture.drop("A3.MAIL", job(["s@slow.test"], tag: "slow"))
        let started = Date()
        try fixture.drain(timeout: 60)
        // The first exchanger said 421 4.7.0 at MAIL twice (once at once, once after the
        // pause); the second exchanger of the same site was never tried.
        XCTAssertEqual(try servers["127.0.0.6"]?.records().count, 0, "hopped to the site's other exchanger")
        XCTAssertEqual(fixture.deferredJobs(), ["A3.MAIL"])
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), Limits.siteThrottlePause, "no pause before the second connection")
    }

    func testNoSiteSeesMoreConnectionsThanAllowed() throws {
        let fixture = try SpoolFixture("mxcap")
        let (dns, servers, _) = try lab(fixture, workers: 6, extra: ["MX_SITE_CONNECTIONS=2", "MX_SITE_MESSAGES=5"])
        defer { dns.stop(); servers.values.forEach { $0.stop() } }
        for n in 1...60 { try fixture.drop(String(format: "B%04d.MAIL", n), job(["r\(n)@alpha.test"], tag: "cap\(n)")) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        let server = try XCTUnwrap(servers["127.0.0.3"])
        XCTAssertEqual(Set(try server.records().flatMap(\.rcpt_tos)), Set((1...60).map { "r\($0)@alpha.test" }))
        // Connections open at once, from the server's own connect/disconnect events.
        var open = 0, most = 0, connections = 0
        for line in (server.file("events.jsonl") ?? "").split(separator: "\n") {
            if line.contains("\"connect\"") { open += 1; connections += 1; most = max(most, open) }
            if line.contains("\"disconnect\"") { open -= 1 }
        }
        XCTAssertLessThanOrEqual(most, 2, "more than MX_SITE_CONNECTIONS at once")
        XCTAssertGreaterThanOrEqual(connections, 12, "a connection carried more than MX_SITE_MESSAGES")
    }

    func testKillingPooldDuringAMultiSiteRunLosesNothing() throws {
        let fixture = try SpoolFixture("mxcrash")
        let (dns, servers, _) = try lab(fixture, workers: 4)
        defer { dns.stop(); servers.values.forEach { $0.stop() } }
        let domains = ["one.test", "alpha.test", "beta.test", "plain.test"]
        var expected: [String] = []
        for n in 1...300 {
            let recipients = (0..<3).map { "u\(n)x\($0)@\(domains[(n + $0) % domains.count])" }
            expected += recipients
            try fixture.drop(String(format: "C%05d.MAIL", n), job(recipients, tag: "crash\(n)"))
        }
        let poold = try TestTools.binDirectory + "/poold"
        var rng = SeededRandom(UInt64(getpid()))
        var kills = 0
        for _ in 0..<4 {
            let child = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath], logTo: fixture.directory + "/poold.log")
            usleep(UInt32(300_000 + rng.next() % 700_000))
            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            if child.process.terminationReason == .uncaughtSignal { kills += 1 }
        }
        let last = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath, "--drain"], logTo: fixture.directory + "/poold.log")
        XCTAssertEqual(last.waitForExit(timeout: 120), 0, "the final drain did not finish")
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        var seen: [String: Int] = [:]
        for server in servers.values { for r in try server.records() { for a in r.rcpt_tos { seen[a, default: 0] += 1 } } }
        let lost = expected.filter { seen[$0] == nil }
        print("mx crash test: \(kills) kills, \(expected.count) recipients, lost \(lost.count), sent twice \(seen.values.reduce(0) { $0 + $1 - 1 })")
        XCTAssertGreaterThanOrEqual(kills, 2)
        XCTAssertEqual(lost, [], "recipients lost")
    }
}
