// Mail-merge jobs delivered against a recording relay (aiosmtpd keeps the exact bytes):
// every row arrives once, byte-identical to a rendering this test writes on its own;
// failed rows bounce to their VERP sender; deferred rows are retried alone; a bad merge job
// goes to bad/ while the good one beside it is delivered; kill -9 in the middle of a large
// job loses no row and sends again at most the rows in flight.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class MergeDeliveryTests: XCTestCase {
    struct Member {
        var email: String
        var name: String
        var balance: String
        var tier: String
        var note: String
    }

    /// Rows with what CSV can throw at a reader: commas, doubled quotes, kept spaces,
    /// UTF-8, empty values, a value holding `&NAME;`, a value that starts a line with a dot.
    static func members(_ count: Int, prefix: String = "m") -> [Member] {
        let names = ["Smith, Alice", "He said \"hi\"", "  spaced  ", "Zoë Ünïcode", "", "&NAME; literal", "Bob"]
        let tiers = ["gold", "GOLD", "platinum", "silver", ""]
        let notes = ["", ".starts with a dot", "..two dots", "plain", "&amp; &NAME; &*TO;", "comma, inside"]
        return (0..<count).map { i in
            Member(email: "\(prefix)\(i)@d\(i % 7).example.\(i % 2 == 0 ? "com" : "net")", name: names[i % names.count],
                   balance: ["12.50", "0", "-3", "7", "0.01", "100"][i % 6], tier: tiers[i % tiers.count], note: notes[i % notes.count])
        }
    }

    static func csvField(_ value: String) -> String {
        value.contains(",") || value.contains("\"") || value.hasPrefix(" ") || value.hasSuffix(" ")
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
    }

    static func table(_ members: [Member]) -> [UInt8] {
        var text = "EMAIL,NAME,BALANCE,TIER,NOTE\n"
        for m in members { text += [m.email, m.name, m.balance, m.tier, m.note].map(csvField).joined(separator: ",") + "\n" }
        return Array(text.utf8)
    }

    static let template = Array("""
        From: News <news@lists.example.org>
        To: &NAME; <&*TO;>
        Subject: Your balance, &NAME;
        Message-ID: <&*MSGID;>
        X-Row: &*ROW;

        Dear &NAME;,
        .BB &BALANCE > 0 AND NOT (&TIER = 'gold' OR &TIER = "platinum")
        you owe &BALANCE;.
        .ELSE
        .* gold members never owe
        .BB &TIER = 'gold'
        gold members owe nothing.
        .ELSE
        nothing is due.
        .EB
        .EB
        .BB &NOTE
        &NOTE;
        .EB
        &amp; stays as it is.

        """.utf8)

    static let sender = "news-bounces+&*VERP;@lists.example.org"

    /// The message row `number` (1-based) must arrive as, rendered here without poold's code.
    static func expected(_ m: Member, number: Int, stem: String) -> [UInt8] {
        var lines = ["From: News <news@lists.example.org>", "To: \(m.name) <\(m.email)>", "Subject: Your balance, \(m.name)",
                     "Message-ID: <\(stem).\(number)@lists.example.org>", "X-Row: \(number)", "", "Dear \(m.name),"]
        let tier = m.tier.lowercased()
        if (Double(m.balance) ?? 0) > 0 && !(tier == "gold" || tier == "platinum") {
            lines.append("you owe \(m.balance).")
        } else if tier == "gold" {
            lines.append("gold members owe nothing.")
        } else {
            lines.append("nothing is due.")
        }
        if !m.note.isEmpty { lines.append(m.note) }
        lines.append("&amp; stays as it is.")
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }

    static func verp(_ email: String) -> String {
        "news-bounces+" + email.replacingOccurrences(of: "@", with: "=") + "@lists.example.org"
    }

    static func job(_ members: [Member]) -> [UInt8] {
        MergeJobWriter.job(sender: sender, table: table(members), template: template)
    }

    /// The X-Row header of a received message.
    static func row(of data: [UInt8]) -> Int? {
        guard let range = data.firstRange(of: Array("\r\nX-Row: ".utf8)) else { return nil }
        return Int(String(decoding: data[range.upperBound...].prefix { $0 != 13 }, as: UTF8.self))
    }

    func testThreeThousandPersonalisedRowsArriveOnceEachByteForByte() throws {
        let fixture = try SpoolFixture("merge")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=3*127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org", "MERGE_SLICE=250"])
        let members = Self.members(3000)
        try fixture.drop("M1.MAIL", Self.job(members))
        let daemon = try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let records = try relay.records()
        var seen = Set<Int>()
        var wrong: [Int] = []
        for record in records {
            guard let number = Self.row(of: record.data), (1...members.count).contains(number) else { XCTFail("a message without its row"); continue }
            XCTAssertTrue(seen.insert(number).inserted, "row \(number) arrived twice")
            let m = members[number - 1]
            if record.data != Self.expected(m, number: number, stem: "M1") || record.rcpt_tos != [m.email] || record.mail_from != Self.verp(m.email) {
                wrong.append(number)
            }
        }
        XCTAssertEqual(seen.count, members.count, "rows lost")
        XCTAssertEqual(wrong.count, 0, "rows that differ from the independent rendering, e.g. \(wrong.prefix(5))")
        if let n = wrong.first, let record = records.first(where: { Self.row(of: $0.data) == n }) {
            print(String(decoding: record.data, as: UTF8.self), "---expected---", String(decoding: Self.expected(members[n - 1], number: n, stem: "M1"), as: UTF8.self))
        }
        // The work was shared: every worker delivered some rows.
        XCTAssertTrue(daemon.board.all.allSatisfy { $0.delivered > 0 }, "\(daemon.board.all.map(\.delivered))")
    }

    func testAFailedRowBouncesToItsVERPSenderAndADeferredRowIsRetriedAlone() throws {
        let fixture = try SpoolFixture("mergeout")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--reject", "@nowhere.example", "--defer", "@later.example"])
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org", "MERGE_SLICE=10", "RETRY_SCHEDULE=5m"])
        var members = Self.members(40)
        // (The VERP sender writes the address as local=domain: the relay refuses neither.)
        members[7].email = "nosuch7@nowhere.example"
        members[23].email = "later23@later.example"
        try fixture.drop("M2.MAIL", Self.job(members))
        let clock = TestClock(Date())
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs(), ["M2.MAIL"], "the deferred row keeps the job")
        let first = try relay.records()
        let dsn = first.filter { $0.mail_from == "<>" || $0.mail_from.isEmpty }
        XCTAssertEqual(dsn.map(\.rcpt_tos), [[Self.verp("nosuch7@nowhere.example")]], "one DSN, to the failed row's own sender")
        let report = String(decoding: dsn.first?.data ?? [], as: UTF8.self)
        XCTAssertTrue(report.contains("Final-Recipient: rfc822; nosuch7@nowhere.example") && report.contains("Status: 5.1.1") && report.contains("X-Row: 8"), report)
        let rows = first.filter { !($0.mail_from == "<>" || $0.mail_from.isEmpty) }.compactMap { Self.row(of: $0.data) }
        XCTAssertEqual(Set(rows), Set((1...40).filter { $0 != 8 && $0 != 24 }))
        XCTAssertEqual(rows.count, 38)
        relay.stop()

        let second = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"], label: "second")
        defer { second.stop() }
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(second.port)", "HELO_NAME=lists.example.org", "MERGE_SLICE=10", "RETRY_SCHEDULE=5m"])
        clock.advance(by: 5 * 60)
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(fixture.jobsLeft(), [])
        let retried = try second.records()
        XCTAssertEqual(retried.compactMap { Self.row(of: $0.data) }, [24], "only the deferred row is sent again")
        XCTAssertEqual(retried.first?.data, Self.expected(members[23], number: 24, stem: "M2"))
    }

    func testABadMergeJobGoesToBadWithItsReasonAndTheGoodOneIsDelivered() throws {
        let fixture = try SpoolFixture("mergebad")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org"])
        let cases: [(String, [UInt8])] = [
            ("M3.MAIL", MergeJobWriter.job(sender: Self.sender, table: Array("EMAIL,NAME\nok@example.com,Ok\nnot an address,X\n".utf8), template: Self.template)),
            ("M4.MAIL", MergeJobWriter.job(sender: Self.sender, table: Array("EMAIL,NAME\na@example.com,A,extra\n".utf8), template: Self.template)),
            ("M5.MAIL", MergeJobWriter.job(sender: Self.sender, table: Array("EMAIL,NAME\na@example.com,A\n".utf8), template: Array("Subject: x\n\n.BB &NAME = 'x'\nno end\n".utf8))),
        ]
        for (name, bytes) in cases { try fixture.drop(name, bytes) }
        try fixture.drop("M6.MAIL", Self.job(Self.members(5)))
        try fixture.drain()
        XCTAssertEqual(fixture.badJobs().sorted(), ["M3.MAIL", "M4.MAIL", "M5.MAIL"])
        for (name, _) in cases {
            let why = (try? String(contentsOfFile: fixture.spool.badDirectory + "/" + name + ".why", encoding: .utf8)) ?? ""
            XCTAssertTrue(why.contains("line "), "\(name): \(why)")
        }
        XCTAssertTrue(((try? String(contentsOfFile: fixture.spool.badDirectory + "/M4.MAIL.why", encoding: .utf8)) ?? "").contains("(row 1)"))
        XCTAssertEqual(Set(try relay.records().compactMap { Self.row(of: $0.data) }), Set(1...5))
    }

    /// While a merge job goes out, status shows its rows, its rate and when it should be done.
    func testStatusShowsAMergeJobsRowsRateAndTimeToFinish() throws {
        let fixture = try SpoolFixture("mergestatus")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", "dot:delay:0.03", "--fault-repeat"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org", "MERGE_SLICE=20"])
        try fixture.drop("M8.MAIL", Self.job(Self.members(120)))
        let running = try fixture.start()
        var seen: MergeProgress?
        XCTAssertTrue(eventually(timeout: 20) {
            let snapshot = StatusSnapshot.decode((try? FileSystem.readAll(fixture.spool.statusPath)) ?? [])
            seen = snapshot?.merges?.first
            return seen.map { $0.delivered > 0 && $0.secondsLeft != nil } ?? false
        }, "no merge progress in status.json")
        XCTAssertEqual(seen?.job, "M8.MAIL")
        XCTAssertEqual(seen?.rows, 120)
        XCTAssertEqual(seen?.slices, 6)
        XCTAssertGreaterThan(seen?.rate ?? 0, 0)
        XCTAssertTrue(eventually(timeout: 30) { fixture.jobsLeft().isEmpty }, "the job did not finish")
        XCTAssertEqual(running.stop(), 0)
        XCTAssertEqual(Set(try relay.records().compactMap { Self.row(of: $0.data) }), Set(1...120))
    }

    func testKillingPooldInALargeJobLosesNoRowAndRepeatsAtMostTheRowsInFlight() throws {
        let fixture = try SpoolFixture("mergecrash")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        let workers = 3
        try fixture.configure(["SMTP_FORWARD_1=\(workers)*127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org", "MERGE_SLICE=500"])
        let members = Self.members(20_000)
        try fixture.drop("M7.MAIL", Self.job(members))
        let poold = try TestTools.binDirectory + "/poold"
        var rng = SeededRandom(UInt64(getpid()))
        var kills = 0
        for _ in 0..<4 {
            let child = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath], logTo: fixture.directory + "/poold.log")
            usleep(UInt32(700_000 + rng.next() % 1_500_000))
            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            if child.process.terminationReason == .uncaughtSignal { kills += 1 }
        }
        let last = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath, "--drain"], logTo: fixture.directory + "/poold.log")
        XCTAssertEqual(last.waitForExit(timeout: 300), 0, "the final drain did not finish")
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        var count: [Int: Int] = [:]
        for record in try relay.records() {
            guard let n = Self.row(of: record.data) else { continue }
            count[n, default: 0] += 1
        }
        let lost = (1...members.count).filter { count[$0] == nil }.count
        let duplicates = count.values.reduce(0) { $0 + $1 - 1 }
        print("merge crash test: \(kills) kills, \(members.count) rows, lost \(lost), sent twice \(duplicates)")
        XCTAssertGreaterThanOrEqual(kills, 3, "the job was done before poold could be killed")
        XCTAssertEqual(lost, 0, "rows lost")
        XCTAssertLessThanOrEqual(duplicates, kills * workers * 3, "more rows sent twice than were in flight")
    }
}
