// The site configuration parser, table by table: MISSION.md's examples parse as documented,
// every bad line is refused with its file, line and fault, and open-time windows open and
// close at the right minute.

import Foundation
import XCTest
@testable import SpoolKit

final class ConfigurationTests: XCTestCase {
    private static let spool = "SPOOL_DIR=/var/spool/poold\n"

    /// Parses `lines` after a first line that sets SPOOL_DIR, so `lines` starts at line 2.
    private func parse(_ lines: String, file: StaticString = #filePath, line: UInt = #line) -> SiteConfiguration? {
        do {
            return try SiteConfiguration.parse(Self.spool + lines, file: "poold.cfg")
        } catch {
            XCTFail("unexpected error: \(error)", file: file, line: line)
            return nil
        }
    }

    /// The error for `text` (no SPOOL_DIR added), or nil when it parses.
    private func failure(_ text: String) -> ConfigurationError? {
        do {
            _ = try SiteConfiguration.parse(text, file: "poold.cfg")
            return nil
        } catch {
            return error
        }
    }

    private func worker(_ value: String, file: StaticString = #filePath, line: UInt = #line) -> WorkerLine? {
        parse("SMTP_FORWARD_1=\(value)\n", file: file, line: line)?.workerLines.first
    }

    // MARK: MISSION.md

    func testEveryWorkerLineExampleFromTheMissionParsesAsDocumented() {
        struct Case { var text: String; var number: Int; var count: Int; var relay: String; var windows: [String]; var failover: String?; var pools: String }
        let cases: [Case] = [
            Case(text: "SMTP_FORWARD_1=2*UNIXSERVER.BAR.COM;SMTP.BAZ.NET", number: 1, count: 2,
                 relay: "UNIXSERVER.BAR.COM:25", windows: [], failover: "SMTP.BAZ.NET:25", pools: "*"),
            Case(text: "SMTP_FORWARD_1=UNIXSERVER.BAR.COM(00:00-05:00);SMTP.BAZ.NET", number: 1, count: 1,
                 relay: "UNIXSERVER.BAR.COM:25", windows: ["00:00-05:00"], failover: "SMTP.BAZ.NET:25", pools: "*"),
            Case(text: "SMTP_FORWARD_3=SMTP.BAZ.NET(10:00-14:00)", number: 3, count: 1,
                 relay: "SMTP.BAZ.NET:25", windows: ["10:00-14:00"], failover: nil, pools: "*"),
            Case(text: "SMTP_FORWARD_1=2*SCOOBY.EXAMPLE.ORG;POOL=A-", number: 1, count: 2,
                 relay: "SCOOBY.EXAMPLE.ORG:25", windows: [], failover: nil, pools: "-A"),
            Case(text: "SMTP_FORWARD_2=SCRAPPY.EXAMPLE.ORG;POOL=B", number: 2, count: 1,
                 relay: "SCRAPPY.EXAMPLE.ORG:25", windows: [], failover: nil, pools: "B"),
            Case(text: "SMTP_FORWARD_4=relay.example.org(Mon-Fri 08:00-18:00)", number: 4, count: 1,
                 relay: "relay.example.org:25", windows: ["Mon-Fri 08:00-18:00"], failover: nil, pools: "*"),
            Case(text: "SMTP_FORWARD_5=relay.example.org(Sat,Sun 00:00-23:59)", number: 5, count: 1,
                 relay: "relay.example.org:25", windows: ["Sat,Sun 00:00-23:59"], failover: nil, pools: "*"),
        ]
        for c in cases {
            guard let configuration = parse(c.text + "\n"), let line = configuration.workerLines.first else { continue }
            XCTAssertEqual(configuration.workerLines.count, 1, c.text)
            XCTAssertEqual(line.number, c.number, c.text)
            XCTAssertEqual(line.line, 2, c.text)
            XCTAssertEqual(line.count, c.count, c.text)
            XCTAssertEqual(line.relay.description, c.relay, c.text)
            XCTAssertEqual(line.windows.map(\.description), c.windows, c.text)
            XCTAssertEqual(line.failover?.description, c.failover, c.text)
            XCTAssertEqual(line.pools.description, c.pools, c.text)
            XCTAssertEqual(line.tls, .may, c.text)
            XCTAssertEqual(configuration.workers.count, c.count, c.text)
        }
    }

    func testThePoolExampleGivesPoolAThreeWorkersAndTheDefaultPoolTwo() throws {
        let configuration = try XCTUnwrap(parse("""
            SMTP_FORWARD_1=2*SCOOBY.EXAMPLE.ORG;POOL=A-
            SMTP_FORWARD_2=SCRAPPY.EXAMPLE.ORG;POOL=B

            """))
        XCTAssertEqual(configuration.workers.map(\.id), [1, 2, 3])
        XCTAssertEqual(configuration.workers(serving: .default).map(\.id), [1, 2])
        XCTAssertEqual(configuration.workers(serving: Pool("A")!).map(\.id), [1, 2])
        XCTAssertEqual(configuration.workers(serving: Pool("B")!).map(\.id), [3])
        XCTAssertEqual(configuration.workers(serving: Pool("C")!).map(\.id), [])
        XCTAssertEqual(configuration.warnings, [])
    }

    func testTheMissionTableValuesParse() throws {
        let configuration = try XCTUnwrap(parse("""
            SMTP_STRICTLY_ROUND_ROBIN=1
            MAXBSMTP=250
            SORT_RECIPIENTS=2
            RETRY_SCHEDULE=5m 15m 30m 1h 2h 4h
            QUEUE_LIFETIME=5d
            SMTP_RATE_LIMIT=12Mbps AB:1.5Mbps C:150kbps
            SIZE_BINS=4 64 1000
            HELO_NAME=lists.example.org
            SMTP_FORWARD_1=relay.example.org

            """))
        XCTAssertEqual(configuration.spoolDirectory, "/var/spool/poold")
        XCTAssertEqual(configuration.file, "poold.cfg")
        XCTAssertTrue(configuration.strictRoundRobin)
        XCTAssertEqual(configuration.maxBSMTP, 250)
        XCTAssertEqual(configuration.sortRecipients, .byDomainWhenSplit)
        XCTAssertEqual(configuration.retrySchedule, [300, 900, 1800, 3600, 7200, 14400])
        XCTAssertEqual(configuration.queueLifetime, 432_000)
        XCTAssertEqual(configuration.rateLimits, [
            RateLimit(pools: nil, bitsPerSecond: 12_000_000),
            RateLimit(pools: PoolSet([Pool("A")!, Pool("B")!]), bitsPerSecond: 1_500_000),
            RateLimit(pools: PoolSet([Pool("C")!]), bitsPerSecond: 150_000),
        ])
        XCTAssertEqual(configuration.sizeBinsKB, [4, 64, 1000])
        XCTAssertEqual(configuration.heloName, "lists.example.org")
    }

    // MARK: Defaults and every key

    func testAConfigurationWithOnlySpoolDirHasEveryDefaultAndWarnsItDeliversNothing() throws {
        let configuration = try XCTUnwrap(parse(""))
        XCTAssertEqual(configuration.workerLines.count, 0)
        XCTAssertEqual(configuration.workers.count, 0)
        XCTAssertFalse(configuration.strictRoundRobin)
        XCTAssertEqual(configuration.strictRoundRobinWait, 60)
        XCTAssertEqual(configuration.maxBSMTP, 100)
        XCTAssertEqual(configuration.sortRecipients, .keep)
        XCTAssertEqual(configuration.retrySchedule, [300, 900, 1800, 3600, 7200, 14400])
        XCTAssertEqual(configuration.queueLifetime, 5 * 86400)
        XCTAssertEqual(configuration.rateLimits, [])
        XCTAssertEqual(configuration.sizeBinsKB, [])
        XCTAssertNil(configuration.heloName)
        XCTAssertEqual(configuration.timeouts, SMTPTimeoutSettings())
        XCTAssertEqual(configuration.timeouts.connect, 30)
        XCTAssertEqual(configuration.timeouts.greeting, 300)
        XCTAssertEqual(configuration.timeouts.command, 300)
        XCTAssertEqual(configuration.timeouts.dataInit, 120)
        XCTAssertEqual(configuration.timeouts.dataBlock, 180)
        XCTAssertEqual(configuration.timeouts.dataDone, 600)
        XCTAssertEqual(configuration.rescanInterval, 30)
        XCTAssertNil(configuration.logDirectory)
        XCTAssertNil(configuration.metricsFile)
        XCTAssertNil(configuration.controlSocket)
        XCTAssertNil(configuration.runAs)
        XCTAssertNil(configuration.defaultListPool)
        XCTAssertEqual(configuration.listPools, [:])
        XCTAssertEqual(configuration.warnings, ["no SMTP_FORWARD_n lines: no worker, the daemon will deliver nothing"])
    }

    func testEveryOtherKeySetsItsSetting() throws {
        let configuration = try XCTUnwrap(parse("""
            smtp_round_robin_wait=0.5s
            SMTP_CONNECT_TIMEOUT=10s
            SMTP_GREETING_TIMEOUT=1m
            SMTP_COMMAND_TIMEOUT=90
            SMTP_DATA_INIT_TIMEOUT=1500ms
            SMTP_DATA_BLOCK_TIMEOUT=2m
            SMTP_DATA_DONE_TIMEOUT=0.25h
            SPOOL_RESCAN_INTERVAL=5s
            LOG_DIR=/var/log/poold
            METRICS_FILE=/run/poold/metrics.prom
            CONTROL_SOCKET=/run/poold/control.sock
            RUN_AS=poold
            DEFAULT_LIST_POOL=l
            LIST_POOL_Announce="A"
            LIST_POOL_BIGLIST=" B , C "
            SMTP_FORWARD_1=relay.example.org;POOL=ABCL-

            """))
        XCTAssertEqual(configuration.strictRoundRobinWait, 0.5)
        XCTAssertEqual(configuration.timeouts.connect, 10)
        XCTAssertEqual(configuration.timeouts.greeting, 60)
        XCTAssertEqual(configuration.timeouts.command, 90)
        XCTAssertEqual(configuration.timeouts.dataInit, 1.5)
        XCTAssertEqual(configuration.timeouts.dataBlock, 120)
        XCTAssertEqual(configuration.timeouts.dataDone, 900)
        XCTAssertEqual(configuration.rescanInterval, 5)
        XCTAssertEqual(configuration.logDirectory, "/var/log/poold")
        XCTAssertEqual(configuration.metricsFile, "/run/poold/metrics.prom")
        XCTAssertEqual(configuration.controlSocket, "/run/poold/control.sock")
        XCTAssertEqual(configuration.runAs, "poold")
        XCTAssertEqual(configuration.defaultListPool, Pool("L"))
        XCTAssertEqual(configuration.listPools, [
            "ANNOUNCE": ListPools(posting: Pool("A")!, admin: Pool("A")!),
            "BIGLIST": ListPools(posting: Pool("B")!, admin: Pool("C")!),
        ])
        XCTAssertEqual(configuration.warnings, [])
    }

    // MARK: Lines, quoting, comments

    func testCommentsBlankLinesQuotesAndCRLFAreReadAsWritten() throws {
        let text = "# poold site configuration\r\n\r\n   # indented comment\r\n"
            + "  spool_dir  =  \"/var/spool/my spool\"  \r\n"
            + "HELO_NAME = lists.example.org\r\n"
            + "LOG_DIR=/var/log/with space\r\n"
            + "METRICS_FILE=\"/tmp/a \\\"quoted\\\" \\\\ name\"\r\n"
            + "CONTROL_SOCKET=\"/tmp/back\\slash\"\r\n"
            + "RUN_AS=\"\"\"\r\n"
        // The last line is `""" `: an empty quoted value and then a stray quote.
        let error = try XCTUnwrap(failure(text))
        XCTAssertEqual(error.description, #"poold.cfg:9: RUN_AS: text after the closing quote in """"#)

        let configuration = try SiteConfiguration.parse(text.replacingOccurrences(of: "RUN_AS=\"\"\"\r\n", with: ""), file: "x.cfg")
        XCTAssertEqual(configuration.spoolDirectory, "/var/spool/my spool")
        XCTAssertEqual(configuration.heloName, "lists.example.org")
        XCTAssertEqual(configuration.logDirectory, "/var/log/with space")
        XCTAssertEqual(configuration.metricsFile, #"/tmp/a "quoted" \ name"#)
        XCTAssertEqual(configuration.controlSocket, #"/tmp/back\slash"#)
        XCTAssertEqual(configuration.file, "x.cfg")
    }

    func testAByteOrderMarkBeforeTheFirstKeyIsIgnored() throws {
        let configuration = try SiteConfiguration.parse("\u{FEFF}SPOOL_DIR=/s\n", file: "poold.cfg")
        XCTAssertEqual(configuration.spoolDirectory, "/s")
    }

    // MARK: Errors

    func testEveryBadLineIsRefusedWithItsLineAndFault() {
        // Each text is placed after "SPOOL_DIR=…" on line 1, so its first line is line 2.
        let cases: [(text: String, error: String)] = [
            ("FOO=1", "poold.cfg:2: unknown key 'FOO'"),
            ("smtp_forward=host", "poold.cfg:2: unknown key 'SMTP_FORWARD'"),
            ("\n\n# c\nMAXBSMTP 100", "poold.cfg:5: expected KEY=VALUE, found 'MAXBSMTP 100'"),
            ("=100", "poold.cfg:2: no key before '='"),
            ("MAXBSMTP=0", "poold.cfg:2: MAXBSMTP: '0' is not a positive whole number"),
            ("DNS_SERVER=resolver.example.org:53", "poold.cfg:2: DNS_SERVER: 'resolver.example.org' is not an IPv4 address (DNS_SERVER takes an address and a port, not a name)"),
            ("DNS_SERVER=127.0.0.1:0", "poold.cfg:2: DNS_SERVER: '0' is not a port 1...65535"),
            ("DNS_SERVER=::1", "poold.cfg:2: DNS_SERVER: '::1': write an IPv6 address in brackets, [::1]:53"),
            ("MX_SITE_CONNECTIONS=0", "poold.cfg:2: MX_SITE_CONNECTIONS: '0' is not a positive whole number"),
            ("MERGE_SLICE=none", "poold.cfg:2: MERGE_SLICE: 'none' is not a positive whole number"),
            ("MAXBSMTP=-5", "poold.cfg:2: MAXBSMTP: '-5' is not a positive whole number"),
            ("MAXBSMTP=+5", "poold.cfg:2: MAXBSMTP: '+5' is not a positive whole number"),
            ("MAXBSMTP=1e3", "poold.cfg:2: MAXBSMTP: '1e3' is not a positive whole number"),
            ("MAXBSMTP=99999999999999999999", "poold.cfg:2: MAXBSMTP: '99999999999999999999' is not a positive whole number"),
            ("MAXBSMTP=", "poold.cfg:2: MAXBSMTP: the value is empty"),
            ("MAXBSMTP=\"\"", "poold.cfg:2: MAXBSMTP: the value is empty"),
            ("MAXBSMTP=\"100", #"poold.cfg:2: MAXBSMTP: the closing quote is missing in "100"#),
            ("SORT_RECIPIENTS=3", "poold.cfg:2: SORT_RECIPIENTS: '3' is not 0 (keep order), 1 (sort by domain) or 2 (sort by domain when split)"),
            ("SMTP_STRICTLY_ROUND_ROBIN=yes", "poold.cfg:2: SMTP_STRICTLY_ROUND_ROBIN: 'yes' is not 0 or 1"),
            ("QUEUE_LIFETIME=5 days", "poold.cfg:2: QUEUE_LIFETIME: '5 days' is not a duration (write e.g. 30s, 5m, 2h, 5d)"),
            ("QUEUE_LIFETIME=0d", "poold.cfg:2: QUEUE_LIFETIME: '0d' must be longer than 0"),
            ("SMTP_CONNECT_TIMEOUT=0", "poold.cfg:2: SMTP_CONNECT_TIMEOUT: '0' must be longer than 0"),
            ("SMTP_DATA_DONE_TIMEOUT=10w", "poold.cfg:2: SMTP_DATA_DONE_TIMEOUT: '10w' is not a duration (write e.g. 30s, 5m, 2h, 5d)"),
            ("SPOOL_RESCAN_INTERVAL=.5s", "poold.cfg:2: SPOOL_RESCAN_INTERVAL: '.5s' is not a duration (write e.g. 30s, 5m, 2h, 5d)"),
            ("RETRY_SCHEDULE=5m 15m soon", "poold.cfg:2: RETRY_SCHEDULE: 'soon' is not a duration (write e.g. 30s, 5m, 2h, 5d)"),
            ("RETRY_SCHEDULE=5m 0s", "poold.cfg:2: RETRY_SCHEDULE: '0s' must be longer than 0"),
            ("SIZE_BINS=4 64 64", "poold.cfg:2: SIZE_BINS: bins must grow: 64 comes after 64"),
            ("SIZE_BINS=64 4", "poold.cfg:2: SIZE_BINS: bins must grow: 4 comes after 64"),
            ("SIZE_BINS=4 0", "poold.cfg:2: SIZE_BINS: '0' is not a positive whole number"),
            ("SIZE_BINS=4kB", "poold.cfg:2: SIZE_BINS: '4kB' is not a positive whole number"),
            ("SMTP_RATE_LIMIT=12Mbps 1Mbps", "poold.cfg:2: SMTP_RATE_LIMIT: more than one server-wide limit"),
            ("SMTP_RATE_LIMIT=A:1Mbps A:2Mbps", "poold.cfg:2: SMTP_RATE_LIMIT: pools A are limited twice"),
            ("SMTP_RATE_LIMIT=12", "poold.cfg:2: SMTP_RATE_LIMIT: '12' is not a rate (write e.g. 150kbps, 1.5Mbps, 1Gbps)"),
            ("SMTP_RATE_LIMIT=12MBs", "poold.cfg:2: SMTP_RATE_LIMIT: '12MBs' is not a rate (write e.g. 150kbps, 1.5Mbps, 1Gbps)"),
            ("SMTP_RATE_LIMIT=A:0kbps", "poold.cfg:2: SMTP_RATE_LIMIT: '0kbps' must be more than 0"),
            ("SMTP_RATE_LIMIT=:1Mbps", "poold.cfg:2: SMTP_RATE_LIMIT: no pools given (write letters A-Z, '-' for the default pool, or '*' for all)"),
            ("SMTP_RATE_LIMIT=A1:1Mbps", "poold.cfg:2: SMTP_RATE_LIMIT: '1' in 'A1' is not a pool (A-Z, '-' or '*')"),
            ("HELO_NAME=bad_name.example.org", "poold.cfg:2: HELO_NAME: 'bad_name.example.org' is not a host name or an address literal"),
            ("HELO_NAME=1.2.3.4", "poold.cfg:2: HELO_NAME: write an address as a literal in brackets: [1.2.3.4]"),
            ("HELO_NAME=[1.2.3.256]", "poold.cfg:2: HELO_NAME: '[1.2.3.256]' is not an address literal ([1.2.3.4] or [IPv6:…])"),
            ("HELO_NAME=-lead.example.org", "poold.cfg:2: HELO_NAME: '-lead.example.org' is not a host name or an address literal"),
            ("DEFAULT_LIST_POOL=AB", "poold.cfg:2: DEFAULT_LIST_POOL: 'AB' is not a pool (one letter A-Z, or '-' for the default pool)"),
            ("LIST_POOL_X=A,B,C", "poold.cfg:2: LIST_POOL_X: 'A,B,C' is not 'x' or 'x,y' (two pools at most)"),
            ("LIST_POOL_X=A,", "poold.cfg:2: LIST_POOL_X: '' is not a pool (one letter A-Z, or '-' for the default pool)"),
            ("LIST_POOL_=A", "poold.cfg:2: LIST_POOL_: no list name after LIST_POOL_"),
            ("RUN_AS=poold user", "poold.cfg:2: RUN_AS: 'poold user' is not a user name"),
            ("LOG_DIR=/var/log\rpoold", "poold.cfg:2: the line holds a control character (U+000D); a value must not hold NUL, CR or LF"),
            ("LOG_DIR=/var/log\u{0}poold", "poold.cfg:2: the line holds a control character (U+0000); a value must not hold NUL, CR or LF"),
            ("MAXBSMTP=10\nMAXBSMTP=20", "poold.cfg:3: MAXBSMTP: given twice (lines 2 and 3)"),
            ("maxbsmtp=10\n\nMaxBSMTP=10", "poold.cfg:4: MAXBSMTP: given twice (lines 2 and 4)"),
            ("LIST_POOL_A=B\nlist_pool_a=C", "poold.cfg:3: LIST_POOL_A: given twice (lines 2 and 3)"),
            ("SPOOL_DIR=/other", "poold.cfg:2: SPOOL_DIR: given twice (lines 1 and 2)"),
        ]
        for c in cases {
            XCTAssertEqual(failure(Self.spool + c.text + "\n")?.description, c.error, c.text)
        }
    }

    func testEveryBadWorkerLineIsRefusedWithItsLineAndFault() {
        let cases: [(value: String, error: String)] = [
            ("", "the value is empty"),
            ("0*relay.example.org", "worker count '0' is not a number 1...1000"),
            ("1001*relay.example.org", "worker count '1001' is not a number 1...1000"),
            ("*relay.example.org", "worker count '' is not a number 1...1000"),
            ("two*relay.example.org", "worker count 'two' is not a number 1...1000"),
            ("relay.example.org:0", "port '0' is not a number 1...65535"),
            ("relay.example.org:65536", "port '65536' is not a number 1...65535"),
            ("relay.example.org:", "port '' is not a number 1...65535"),
            ("relay.example.org:smtp", "port 'smtp' is not a number 1...65535"),
            ("relay..example.org", "'relay..example.org' is not a host name, an IPv4 address or an [IPv6] address"),
            ("relay!.example.org", "'relay!.example.org' is not a host name, an IPv4 address or an [IPv6] address"),
            ("-relay.example.org", "'-relay.example.org' is not a host name, an IPv4 address or an [IPv6] address"),
            ("10.0.0.256", "'10.0.0.256' is not an IPv4 address"),
            ("10.0.0", "'10.0.0' is not an IPv4 address"),
            ("10.0.0.01", "'10.0.0.01' is not an IPv4 address"),
            ("::1", "'::1' looks like an IPv6 address: write it in brackets, e.g. [::1]:25"),
            ("[::1", "'[::1' has '[' without ']'"),
            ("[::g]", "'::g' is not an IPv6 address"),
            ("[1.2.3.4]", "'1.2.3.4' is not an IPv6 address"),
            ("[::1]25", "unexpected '25' after '[::1]'"),
            (":25", "no host given"),
            ("relay.example.org(08:00-18:00", "the open-time windows in 'relay.example.org(08:00-18:00' must end with ')'"),
            ("relay.example.org 08:00-18:00)", "')' without '(' in 'relay.example.org 08:00-18:00)'"),
            ("relay.example.org()", "'()' holds no open-time window"),
            ("relay.example.org(24:00-05:00)", "'24:00-05:00' is not a time range hh:mm-hh:mm (hours 00-23, minutes 00-59)"),
            ("relay.example.org(08:60-09:00)", "'08:60-09:00' is not a time range hh:mm-hh:mm (hours 00-23, minutes 00-59)"),
            ("relay.example.org(0800-0900)", "'0800-0900' is not a time range hh:mm-hh:mm (hours 00-23, minutes 00-59)"),
            ("relay.example.org(08:00)", "'08:00' is not a time range hh:mm-hh:mm (hours 00-23, minutes 00-59)"),
            ("relay.example.org(08:00-08:00)", "'08:00-08:00' opens and closes at the same minute"),
            ("relay.example.org(Sat,Sun)", "'Sat,Sun' has no time range after it (write e.g. Sat,Sun 00:00-23:59)"),
            ("relay.example.org(Mon-Fri 08:00-18:00,)", "an empty window in '(Mon-Fri 08:00-18:00,)'"),
            ("relay.example.org(Mo-Fr 08:00-18:00)", "'Mo' in 'Mo-Fr' is not a weekday (Mon … Sun)"),
            ("relay.example.org(Mon-Wed-Fri 08:00-18:00)", "'Mon-Wed-Fri' is not a day or a range of days like Mon-Fri"),
            ("relay.example.org;backup.example.org;third.example.org", "a second failover host 'third.example.org' (a line has at most one)"),
            ("relay.example.org;;POOL=A", "an empty field between ';'"),
            ("relay.example.org;POOL", "'POOL' is an option without '=' (a failover host cannot be named like an option)"),
            ("MX;MX_SITE_CONNECTIONS", "'MX_SITE_CONNECTIONS' is an option without '=' (a failover host cannot be named like an option)"),
            ("relay.example.org;backup..example.org", "'backup..example.org' is not a host name, an IPv4 address or an [IPv6] address"),
            ("relay.example.org;POOL=", "POOL: no pools given (write letters A-Z, '-' for the default pool, or '*' for all)"),
            ("relay.example.org;POOL=A*", "POOL: '*' means every pool and stands alone, not in 'A*'"),
            ("relay.example.org;POOL=A+B", "POOL: '+' in 'A+B' is not a pool (A-Z, '-' or '*')"),
            ("relay.example.org;POOL=A;pool=B", "option POOL given twice"),
            ("relay.example.org;MAXSIZE=10MB", "MAXSIZE: '10MB' is not a positive whole number"),
            ("relay.example.org;TLS=always", "TLS: 'always' is not none, may, require or smtps"),
            ("relay.example.org;TLS_CA=", "TLS_CA: the value is empty"),
            ("relay.example.org;AUTH_INSECURE=yes", "AUTH_INSECURE: 'yes' is not 0 or 1"),
            ("relay.example.org;EIGHTBIT=maybe", "EIGHTBIT: 'maybe' is not convert or pass"),
            ("MX;backup.example.org", "an MX line delivers to each domain's own exchangers: it has no failover"),
            ("MX:2525", "MX takes no port (MX_PORT sets the port of mail exchangers)"),
            ("4*MX;TLS=smtps", "TLS=smtps does not apply to mail exchangers (port 25): use may or require"),
            ("relay.example.org;PRIORITY=1", "unknown option 'PRIORITY' (known: AUTH, AUTH_INSECURE, EIGHTBIT, MAXSIZE, POOL, SECRET, TLS, TLS_CA)"),
            ("relay.example.org;AUTH=lists", "AUTH needs SECRET= (the file that holds the password)"),
            ("relay.example.org;SECRET=/etc/poold/secret", "SECRET needs AUTH= (the user name)"),
            ("relay.example.org;TLS=none;AUTH=lists;SECRET=/etc/poold/secret",
             "AUTH with TLS=none would send the password in clear: add AUTH_INSECURE=1 or use TLS=may, require or smtps"),
        ]
        for c in cases {
            let text = Self.spool + "# workers\nSMTP_FORWARD_7=\(c.value)\n"
            XCTAssertEqual(failure(text)?.description, "poold.cfg:3: SMTP_FORWARD_7: \(c.error)", c.value)
        }
    }

    func testAWorkerNumberGivenTwiceIsRefusedNamingBothLines() {
        let cases: [(text: String, error: String)] = [
            ("SMTP_FORWARD_1=a.example.org\nSMTP_FORWARD_1=b.example.org",
             "poold.cfg:3: SMTP_FORWARD_1: worker number 1 given twice (lines 2 and 3)"),
            ("SMTP_FORWARD_2=a.example.org\n# gap\nsmtp_forward_02=b.example.org",
             "poold.cfg:4: SMTP_FORWARD_02: worker number 2 given twice (lines 2 and 4)"),
            ("SMTP_FORWARD_0=a.example.org", "poold.cfg:2: SMTP_FORWARD_0: '0' is not a worker number (1, 2, …)"),
            ("SMTP_FORWARD_X=a.example.org", "poold.cfg:2: SMTP_FORWARD_X: 'X' is not a worker number (1, 2, …)"),
            ("SMTP_FORWARD_=a.example.org", "poold.cfg:2: SMTP_FORWARD_: '' is not a worker number (1, 2, …)"),
        ]
        for c in cases {
            XCTAssertEqual(failure(Self.spool + c.text + "\n")?.description, c.error, c.text)
        }
    }

    func testAConfigurationWithoutSpoolDirIsRefusedWithoutALine() throws {
        let error = try XCTUnwrap(failure("MAXBSMTP=10\nSMTP_FORWARD_1=relay.example.org\n"))
        XCTAssertNil(error.line)
        XCTAssertEqual(error.file, "poold.cfg")
        XCTAssertEqual(error.message, "SPOOL_DIR is required")
        XCTAssertEqual(error.description, "poold.cfg: SPOOL_DIR is required")
    }

    func testTheFirstBadLineIsTheOneReported() throws {
        let error = try XCTUnwrap(failure("SPOOL_DIR=/s\nMAXBSMTP=x\nFOO=1\n"))
        XCTAssertEqual(error.line, 2)
        XCTAssertEqual(error.message, "MAXBSMTP: 'x' is not a positive whole number")
    }

    // MARK: Worker lines

    func testWorkerIdsFollowTheWorkerNumberNotTheFilePosition() throws {
        let configuration = try XCTUnwrap(parse("""
            SMTP_FORWARD_3=c.example.org
            SMTP_FORWARD_1=3*a.example.org;POOL=A
            SMTP_FORWARD_10=2*d.example.org;POOL=-
            SMTP_FORWARD_2=b.example.org;POOL=AB

            """))
        XCTAssertEqual(configuration.workerLines.map(\.number), [1, 2, 3, 10])
        XCTAssertEqual(configuration.workerLines.map(\.line), [3, 5, 2, 4])
        XCTAssertEqual(configuration.workers.map(\.id), [1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(configuration.workers.map(\.settings.relay.host),
                       ["a.example.org", "a.example.org", "a.example.org", "b.example.org", "c.example.org", "d.example.org", "d.example.org"])
        XCTAssertEqual(configuration.workers(serving: Pool("A")!).map(\.id), [1, 2, 3, 4, 5])
        XCTAssertEqual(configuration.workers(serving: Pool("B")!).map(\.id), [4, 5])
        XCTAssertEqual(configuration.workers(serving: .default).map(\.id), [5, 6, 7])
        XCTAssertEqual(configuration.warnings, [])
    }

    func testWorkerLineOptionsAndPorts() {
        struct Case { var value: String; var relay: String; var failover: String?; var check: (WorkerLine) -> Void }
        let cases: [Case] = [
            Case(value: "relay.example.org:587;TLS=require;AUTH=lists;SECRET=/etc/poold/relay.secret",
                 relay: "relay.example.org:587", failover: nil) { line in
                XCTAssertEqual(line.tls, .require)
                XCTAssertEqual(line.authUser, "lists")
                XCTAssertEqual(line.secretFile, "/etc/poold/relay.secret")
                XCTAssertFalse(line.authInsecure)
            },
            Case(value: "relay.example.org;TLS=SMTPS;backup.example.org", relay: "relay.example.org:465",
                 failover: "backup.example.org:465") { XCTAssertEqual($0.tls, .smtps) },
            Case(value: "relay.example.org:4650;backup.example.org:25;tls=smtps", relay: "relay.example.org:4650",
                 failover: "backup.example.org:25") { XCTAssertEqual($0.tls, .smtps) },
            Case(value: "relay.example.org ; maxsize = 10240 ; tls_ca=/etc/ssl/relay-ca.pem ; TLS=may", relay: "relay.example.org:25",
                 failover: nil) { line in
                XCTAssertEqual(line.maxSizeKB, 10240)
                XCTAssertEqual(line.tlsCA, "/etc/ssl/relay-ca.pem")
                XCTAssertEqual(line.tls, .may)
            },
            Case(value: "10.0.0.1:2525;TLS=none;AUTH=u;SECRET=s;AUTH_INSECURE=1", relay: "10.0.0.1:2525", failover: nil) { line in
                XCTAssertEqual(line.tls, TLSMode.none)
                XCTAssertTrue(line.authInsecure)
            },
            Case(value: "relay_1.internal;POOL=*", relay: "relay_1.internal:25", failover: nil) { XCTAssertTrue($0.pools.isAll) },
            Case(value: "relay.example.org;POOL=zA", relay: "relay.example.org:25", failover: nil) {
                XCTAssertEqual($0.pools.description, "AZ")
                XCTAssertNil($0.maxSizeKB)
                XCTAssertNil($0.tlsCA)
                XCTAssertNil($0.authUser)
            },
            Case(value: "1000*relay.example.org", relay: "relay.example.org:25", failover: nil) { XCTAssertEqual($0.count, 1000) },
        ]
        for c in cases {
            guard let line = worker(c.value) else { continue }
            XCTAssertEqual(line.relay.description, c.relay, c.value)
            XCTAssertEqual(line.failover?.description, c.failover, c.value)
            c.check(line)
        }
    }

    func testIPv6RelaysAreWrittenInBracketsAndStoredWithout() {
        let good: [(value: String, host: String, port: UInt16, description: String)] = [
            ("[::1]", "::1", 25, "[::1]:25"),
            ("[::1]:2525", "::1", 2525, "[::1]:2525"),
            ("[2001:db8::25]:587", "2001:db8::25", 587, "[2001:db8::25]:587"),
            ("[2001:db8:0:0:0:0:0:1]", "2001:db8:0:0:0:0:0:1", 25, "[2001:db8:0:0:0:0:0:1]:25"),
            ("[::ffff:192.0.2.1]", "::ffff:192.0.2.1", 25, "[::ffff:192.0.2.1]:25"),
            ("[fe80::]", "fe80::", 25, "[fe80::]:25"),
            ("[::]", "::", 25, "[::]:25"),
            ("[1:2:3:4:5:6:7::]", "1:2:3:4:5:6:7::", 25, "[1:2:3:4:5:6:7::]:25"),
            ("192.0.2.1:26", "192.0.2.1", 26, "192.0.2.1:26"),
        ]
        for c in good {
            guard let line = worker(c.value) else { continue }
            XCTAssertEqual(line.relay, RelayHost(host: c.host, port: c.port), c.value)
            XCTAssertEqual(line.relay.description, c.description, c.value)
        }
        let bad = ["1:2:3:4:5:6:7:8:9", "1::2::3", ":::1", "1:2:3:4:5:6:7", "12345::1", "fe80::1%eth0", "::1.2.3", "1.2.3.4::", "1:2:3:4:5:6:7:8::", ""]
        for address in bad {
            XCTAssertEqual(failure(Self.spool + "SMTP_FORWARD_1=[\(address)]\n")?.description,
                           "poold.cfg:2: SMTP_FORWARD_1: '\(address)' is not an IPv6 address", address)
        }
    }

    func testHeloNameTakesHostNamesAndAddressLiterals() {
        for name in ["lists.example.org", "localhost", "[192.0.2.1]", "[IPv6:2001:db8::1]", "[ipv6:::1]"] {
            XCTAssertEqual(parse("HELO_NAME=\(name)\n")?.heloName, name)
        }
    }

    // MARK: Values

    func testDurations() {
        let cases: [(text: String, seconds: Seconds)] = [
            ("30s", 30), ("30", 30), ("5m", 300), ("2h", 7200), ("5d", 432_000), ("0.5s", 0.5), ("250ms", 0.25),
            ("1.5h", 5400), ("10M", 600), ("007s", 7),
        ]
        for c in cases {
            XCTAssertEqual(parse("QUEUE_LIFETIME=\(c.text)\n")?.queueLifetime, c.seconds, c.text)
        }
        XCTAssertEqual(parse("SMTP_ROUND_ROBIN_WAIT=0\n")?.strictRoundRobinWait, 0)
        XCTAssertEqual(parse("RETRY_SCHEDULE=  1m   10m\t1h \n")?.retrySchedule, [60, 600, 3600])
    }

    func testRateLimits() {
        let cases: [(text: String, limits: [RateLimit])] = [
            ("12Mbps", [RateLimit(pools: nil, bitsPerSecond: 12e6)]),
            ("12mbps", [RateLimit(pools: nil, bitsPerSecond: 12e6)]),
            ("12MBPS", [RateLimit(pools: nil, bitsPerSecond: 12e6)]),
            ("1Gbps", [RateLimit(pools: nil, bitsPerSecond: 1e9)]),
            ("800bps", [RateLimit(pools: nil, bitsPerSecond: 800)]),
            ("-:2.5kbps", [RateLimit(pools: PoolSet([.default]), bitsPerSecond: 2500)]),
            ("C:150kbps 2Mbps", [RateLimit(pools: PoolSet([Pool("C")!]), bitsPerSecond: 150_000),
                                  RateLimit(pools: nil, bitsPerSecond: 2e6)]),
            ("ab:1Mbps BC:1Mbps", [RateLimit(pools: PoolSet([Pool("A")!, Pool("B")!]), bitsPerSecond: 1e6),
                                   RateLimit(pools: PoolSet([Pool("B")!, Pool("C")!]), bitsPerSecond: 1e6)]),
        ]
        for c in cases {
            XCTAssertEqual(parse("SMTP_RATE_LIMIT=\(c.text)\n")?.rateLimits, c.limits, c.text)
        }
    }

    func testSizeBins() {
        XCTAssertEqual(parse("SIZE_BINS=4 64 1000\n")?.sizeBinsKB, [4, 64, 1000])
        XCTAssertEqual(parse("SIZE_BINS=  16\n")?.sizeBinsKB, [16])
        XCTAssertEqual(parse("SIZE_BINS=\"1 2\"\n")?.sizeBinsKB, [1, 2])
    }

    // MARK: Windows

    func testWindowsAreParsedAndPrintedNormalised() {
        let cases: [(text: String, windows: [String], days: [Set<Weekday>])] = [
            ("00:00-05:00", ["00:00-05:00"], [[]]),
            ("8:00-18:00", ["08:00-18:00"], [[]]),
            ("mon-fri 08:00 - 18:00", ["Mon-Fri 08:00-18:00"], [[.monday, .tuesday, .wednesday, .thursday, .friday]]),
            ("Sat,Sun 00:00-23:59, Mon-Fri 00:00-05:00", ["Sat,Sun 00:00-23:59", "Mon-Fri 00:00-05:00"],
             [[.saturday, .sunday], [.monday, .tuesday, .wednesday, .thursday, .friday]]),
            ("Fri-Mon 22:00-02:00", ["Fri-Mon 22:00-02:00"], [[.friday, .saturday, .sunday, .monday]]),
            ("Saturday,SUNDAY 10:00-12:00", ["Sat,Sun 10:00-12:00"], [[.saturday, .sunday]]),
            ("Sun,Mon 10:00-12:00", ["Sun,Mon 10:00-12:00"], [[.sunday, .monday]]),
            ("Mon,Wed,Fri 10:00-12:00", ["Mon,Wed,Fri 10:00-12:00"], [[.monday, .wednesday, .friday]]),
            ("Mon Tue Wed 10:00-12:00", ["Mon-Wed 10:00-12:00"], [[.monday, .tuesday, .wednesday]]),
            ("Thu-Thu 01:00-02:00", ["Thu 01:00-02:00"], [[.thursday]]),
            ("Mon-Sun 01:00-02:00", ["01:00-02:00"], [[]]),
            ("Wed-Tue 01:00-02:00", ["01:00-02:00"], [[]]),
            ("Sat-Mon,Wed 01:00-02:00", ["Wed,Sat-Mon 01:00-02:00"], [[.saturday, .sunday, .monday, .wednesday]]),
            ("09:00-12:00,13:00-17:00", ["09:00-12:00", "13:00-17:00"], [[], []]),
        ]
        for c in cases {
            guard let line = worker("relay.example.org(\(c.text))") else { continue }
            XCTAssertEqual(line.windows.map(\.description), c.windows, c.text)
            XCTAssertEqual(line.windows.map(\.days), c.days, c.text)
        }
    }

    func testWindowsOpenAndCloseAtTheRightMinute() {
        let nightly = OpenWindow(start: 0, end: 5 * 60)
        let office = OpenWindow(days: [.monday, .tuesday, .wednesday, .thursday, .friday], start: 8 * 60, end: 18 * 60)
        let fridayNight = OpenWindow(days: [.friday], start: 22 * 60, end: 2 * 60)
        let everyNight = OpenWindow(start: 22 * 60, end: 2 * 60)
        let longWeekend = OpenWindow(days: [.friday, .saturday, .sunday, .monday], start: 12 * 60, end: 13 * 60)
        let cases: [(window: OpenWindow, day: Weekday, time: String, open: Bool)] = [
            (nightly, .wednesday, "00:00", true),
            (nightly, .wednesday, "05:00", true),   // the end minute is inclusive
            (nightly, .wednesday, "05:01", false),
            (nightly, .sunday, "23:59", false),
            (office, .monday, "07:59", false),
            (office, .monday, "08:00", true),
            (office, .friday, "18:00", true),
            (office, .friday, "18:01", false),
            (office, .saturday, "12:00", false),
            (office, .sunday, "12:00", false),
            (fridayNight, .friday, "21:59", false),
            (fridayNight, .friday, "22:00", true),
            (fridayNight, .friday, "23:59", true),
            (fridayNight, .saturday, "00:00", true), // after midnight it belongs to Friday
            (fridayNight, .saturday, "02:00", true),
            (fridayNight, .saturday, "02:01", false),
            (fridayNight, .friday, "01:00", false),  // Thursday's night is not Friday's
            (fridayNight, .saturday, "22:30", false),
            (everyNight, .sunday, "01:00", true),
            (everyNight, .monday, "12:00", false),
            (everyNight, .monday, "23:00", true),
            (longWeekend, .monday, "12:30", true),   // Fri-Mon wraps past Sunday
            (longWeekend, .sunday, "12:30", true),
            (longWeekend, .tuesday, "12:30", false),
            (longWeekend, .thursday, "12:30", false),
        ]
        for c in cases {
            let parts = c.time.split(separator: ":").map { Int($0)! }
            XCTAssertEqual(c.window.isOpen(weekday: c.day, minute: parts[0] * 60 + parts[1]), c.open,
                           "\(c.window) on \(c.day) at \(c.time)")
        }
    }

    func testAWorkerIsOpenWhenAnyOfItsWindowsIsOpenInTheCalendarsTimeZone() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try XCTUnwrap(TimeZone(identifier: "Europe/Paris"))
        let line = try XCTUnwrap(worker("relay.example.org(Sat,Sun 00:00-23:59, Mon-Fri 00:00-05:00)"))
        let always = try XCTUnwrap(worker("relay.example.org"))
        func date(_ text: String) throws -> Date {
            // 2024-06-07 is a Friday; Paris is UTC+2 in June.
            let formatter = ISO8601DateFormatter()
            return try XCTUnwrap(formatter.date(from: text))
        }
        let cases: [(instant: String, open: Bool)] = [
            ("2024-06-07T02:59:00Z", true),   // Fri 04:59 Paris
            ("2024-06-07T03:00:59Z", true),   // Fri 05:00:59 Paris: the end minute is inclusive
            ("2024-06-07T03:01:00Z", false),  // Fri 05:01 Paris
            ("2024-06-07T21:59:00Z", false),  // Fri 23:59 Paris
            ("2024-06-07T22:00:00Z", true),   // Sat 00:00 Paris
            ("2024-06-09T21:59:00Z", true),   // Sun 23:59 Paris
            ("2024-06-10T10:00:00Z", false),  // Mon 12:00 Paris
        ]
        for c in cases {
            XCTAssertEqual(line.isOpen(at: try date(c.instant), calendar: calendar), c.open, c.instant)
            XCTAssertTrue(always.isOpen(at: try date(c.instant), calendar: calendar), c.instant)
        }
    }

    // MARK: Warnings, loading, building by hand

    func testWarnings() {
        let cases: [(text: String, warnings: [String])] = [
            ("SMTP_FORWARD_1=a.example.org;POOL=A", ["no worker serves the default pool '-'"]),
            ("SMTP_FORWARD_1=a.example.org;POOL=-\nDEFAULT_LIST_POOL=B\nLIST_POOL_X=C,D\nLIST_POOL_Y=-",
             ["no worker serves pool 'B' (named by DEFAULT_LIST_POOL)",
              "no worker serves pool 'C' (named by LIST_POOL_X)",
              "no worker serves pool 'D' (named by LIST_POOL_X)"]),
            ("SMTP_FORWARD_1=a.example.org;TLS=none;TLS_CA=/ca.pem", ["SMTP_FORWARD_1 (line 2): TLS_CA is ignored with TLS=none"]),
            ("SMTP_FORWARD_1=a.example.org;POOL=A-", []),
        ]
        for c in cases {
            XCTAssertEqual(parse(c.text + "\n")?.warnings, c.warnings, c.text)
        }
    }

    func testLoadReadsAFileAndNamesItInErrors() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("poold-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("good.cfg").path
        try "SPOOL_DIR=/s\nSMTP_FORWARD_1=2*relay.example.org\n".write(toFile: good, atomically: true, encoding: .utf8)
        let configuration = try SiteConfiguration.load(path: good)
        XCTAssertEqual(configuration.file, good)
        XCTAssertEqual(configuration.workers.count, 2)

        let bad = directory.appendingPathComponent("bad.cfg").path
        try "SPOOL_DIR=/s\nMAXBSMTP=0\n".write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SiteConfiguration.load(path: bad)) { error in
            XCTAssertEqual((error as? ConfigurationError)?.description, "\(bad):2: MAXBSMTP: '0' is not a positive whole number")
        }
        let missing = directory.appendingPathComponent("missing.cfg").path
        XCTAssertThrowsError(try SiteConfiguration.load(path: missing)) { error in
            XCTAssertEqual((error as? ConfigurationError)?.description, "\(missing): cannot read the configuration: no such file")
        }
        XCTAssertThrowsError(try SiteConfiguration.load(path: directory.path)) { error in
            XCTAssertEqual((error as? ConfigurationError)?.description, "\(directory.path): cannot read the configuration: it is a directory")
        }
        let latin1 = directory.appendingPathComponent("latin1.cfg").path
        _ = FileManager.default.createFile(atPath: latin1, contents: Data([0x53, 0x3D, 0xE9, 0x0A]))
        XCTAssertThrowsError(try SiteConfiguration.load(path: latin1)) { error in
            XCTAssertEqual((error as? ConfigurationError)?.description, "\(latin1): the configuration is not valid UTF-8 text")
        }
    }

    func testAConfigurationBuiltInCodeExpandsItsWorkers() {
        let lines = [
            WorkerLine(number: 2, count: 2, relay: RelayHost(host: "b.example.org"), pools: PoolSet([Pool("B")!])),
            WorkerLine(number: 1, relay: RelayHost(host: "::1", port: 2525)),
        ]
        let configuration = SiteConfiguration(file: "test", spoolDirectory: "/s", workerLines: lines)
        XCTAssertEqual(configuration.workerLines.map(\.number), [1, 2])
        XCTAssertEqual(configuration.workers.map { "\($0.id) \($0.settings.relay)" }, ["1 [::1]:2525", "2 b.example.org:25", "3 b.example.org:25"])
        XCTAssertEqual(configuration.workers(serving: Pool("B")!).map(\.id), [1, 2, 3])
        XCTAssertEqual(configuration.workers(serving: Pool("C")!).map(\.id), [1])
    }
}

extension ConfigurationTests {
    func testAnMXLineDeliversDirectlyWithItsOwnKeys() throws {
        let config = try SiteConfiguration.parse(Self.spool + "SMTP_FORWARD_1=16*MX;POOL=B\nDNS_SERVER=[::1]:5353\nMX_SITE_CONNECTIONS=3\nMX_SITE_MESSAGES=50\nMX_PORT=2525\n", file: "poold.cfg")
        XCTAssertTrue(config.workerLines[0].isDirect)
        XCTAssertEqual(config.workers.count, 16)
        XCTAssertEqual(config.dnsServer, "[::1]:5353")
        XCTAssertEqual([config.mxSiteConnections, config.mxSiteMessages], [3, 50])
        XCTAssertEqual(config.mxPort, 2525)
        XCTAssertEqual(config.workerLines[0].tls, .may, "STARTTLS when offered, unverified, unless the line says otherwise")
    }
}
