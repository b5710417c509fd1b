// What each kind of reply does to a recipient, against real relays: 5xx bounces with an
// RFC 3464 DSN (never for a null sender), 4xx defers and a retry sends only what is left,
// 452 splits, a 421 or an early drop goes again at once on a new connection, garbage
// defers, a stalled relay meets its deadline, SIZE refuses.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class OutcomeTests: XCTestCase {
    func job(from sender: String, to recipients: [String], body: String = "Subject: test\r\nX-Test-Id: t\r\n\r\nhello\r\n") -> [UInt8] {
        JobWriter.bsmtp(message: Array(body.utf8), from: sender, to: recipients)
    }

    func text(_ r: RecordingRelay.Record) -> String { String(decoding: r.data, as: UTF8.self) }

    func testA550BouncesWithADeliveryStatusNotificationToTheSender() throws {
        let fixture = try SpoolFixture("bounce")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--reject", "nosuch"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org"])
        try fixture.drop("A1.MAIL", job(from: "owner@lists.example.org", to: ["ok@example.com", "nosuch@example.com", "nosuch2@example.com"]))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [], "the job and its DSN both left the spool")
        let records = try relay.records()
        XCTAssertEqual(records.count, 2, "the posting, then one DSN for both failures")
        let dsn = try XCTUnwrap(records.first { $0.mail_from == "<>" || $0.mail_from.isEmpty })
        XCTAssertEqual(dsn.rcpt_tos, ["owner@lists.example.org"])
        let report = text(dsn)
        for fragment in ["Content-Type: multipart/report; report-type=delivery-status", "Content-Type: message/delivery-status",
                         "Reporting-MTA: dns; lists.example.org", "Final-Recipient: rfc822; nosuch@example.com",
                         "Final-Recipient: rfc822; nosuch2@example.com", "Action: failed", "Status: 5.1.1",
                         "Diagnostic-Code: smtp; 550 5.1.1", "Remote-MTA: dns; 127.0.0.1\r\n",
                         "Content-Type: text/rfc822-headers", "X-Test-Id: t", "Arrival-Date: "] {
            XCTAssertTrue(report.contains(fragment), "DSN lacks '\(fragment)'")
        }
        XCTAssertFalse(report.contains("Final-Recipient: rfc822; ok@example.com"))
        XCTAssertFalse(report.contains("Remote-MTA: dns; 127.0.0.1:"), "a dns value names a host, without port")
    }

    func testANullSenderMessageIsNeverBounced() throws {
        let fixture = try SpoolFixture("nobounce")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--reject", "nosuch"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        try fixture.drop("-1.MAIL", job(from: "", to: ["nosuch@example.com"]))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(try relay.records().count, 0, "no DSN for a DSN")
    }

    func testA451DefersAndTheRetrySendsOnlyWhatIsLeft() throws {
        let fixture = try SpoolFixture("defer")
        let first = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--defer", "later"], label: "first")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(first.port)", "RETRY_SCHEDULE=5m"])
        try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com", "later@example.com", "b@example.com"]))
        let clock = TestClock(Date())
        try fixture.drain(clock: clock.function)
        first.stop()
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(try first.records().flatMap(\.rcpt_tos), ["a@example.com", "b@example.com"])
        let journals = try FileManager.default.contentsOfDirectory(atPath: fixture.spool.stateDirectory).filter { $0.hasSuffix(".journal") }
        XCTAssertEqual(journals.count, 1)
        let journal = try String(contentsOfFile: fixture.spool.stateDirectory + "/" + journals[0], encoding: .utf8)
        XCTAssertTrue(journal.contains("T 0 1 451 4.3.0"), journal)
        // The status view counts it as deferred.
        XCTAssertEqual(StatusSnapshot.scan(fixture.spool).deferred, 1)

        let second = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"], label: "second")
        defer { second.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(second.port)", "RETRY_SCHEDULE=5m"])
        clock.advance(by: 5 * 60)
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(try second.records().flatMap(\.rcpt_tos), ["later@example.com"], "only the deferred recipient is sent again")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fixture.spool.stateDirectory).filter { $0.hasSuffix(".journal") }, [])
    }

    func testA452AfterThreeRecipientsSendsTheRestInFurtherTransactions() throws {
        let fixture = try SpoolFixture("452")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--max-rcpt", "3"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        let recipients = (1...10).map { "r\($0)@example.com" }
        try fixture.drop("A1.MAIL", job(from: "o@example.org", to: recipients))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let records = try relay.records()
        XCTAssertEqual(records.map(\.rcpt_tos.count), [3, 3, 3, 1])
        XCTAssertEqual(records.flatMap(\.rcpt_tos).sorted(), recipients.sorted())
    }

    /// A 421 anywhere, or a connection dropped before the message was out, is the
    /// connection's fault, not the message's: the job goes again at once on a new connection.
    func testA421OrADropBeforeTheMessageSendsTheJobAgainAtOnceOnANewConnection() throws {
        for fault in ["mail:reply:421 4.3.2 shutting down", "rcpt:reply:421 4.3.2 bye", "data:reply:421 4.3.2 bye",
                      "dot:reply:421 4.3.2 bye", "mail:drop", "rcpt:drop", "data:drop"] {
            let fixture = try SpoolFixture("421")
            let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", fault])
            defer { relay.stop() }
            try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
            try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com", "b@example.com"]))
            try fixture.drain()
            XCTAssertEqual(fixture.deferredJobs(), [], fault)
            XCTAssertEqual(fixture.jobsLeft(), [], fault)
            XCTAssertEqual(try relay.records().flatMap(\.rcpt_tos), ["a@example.com", "b@example.com"], fault)
        }
    }

    /// Once: a second 421 in a row defers the job to the retry schedule.
    func testA421ForTheSameJobTwiceInARowDefersIt() throws {
        let fixture = try SpoolFixture("421twice")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py",
                                       arguments: ["--fault", "mail:reply:421 4.3.2 bye", "--fault-repeat"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "RETRY_SCHEDULE=1m"])
        try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com"]))
        try fixture.drain()
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(try relay.records().count, 0)
    }

    /// A reply that is not SMTP, or a drop after the message was out (the relay may have
    /// it), defers the job; the retry delivers it and nothing is lost. The retry is due by
    /// the injected clock, not by sleeping.
    func testGarbageOrADropAfterTheMessageDefersAndTheRetryLosesNothing() throws {
        for fault in ["rcpt:garbage", "data:garbage", "dot:garbage", "dot:drop", "greeting:reply:421 4.3.2 busy"] {
            let fixture = try SpoolFixture("garbage")
            let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", fault])
            defer { relay.stop() }
            try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "RETRY_SCHEDULE=10m"])
            try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com", "b@example.com"]))
            let clock = TestClock(Date())
            try fixture.drain(clock: clock.function)
            XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"], fault)
            XCTAssertEqual(try relay.records().count, 0, fault)
            try fixture.drain(clock: clock.function)
            XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"], "\(fault): not due before its time")
            clock.advance(by: 11 * 60)
            try fixture.drain(clock: clock.function)  // the fault fired once: now it goes through
            XCTAssertEqual(fixture.deferredJobs(), [], fault)
            XCTAssertEqual(try relay.records().flatMap(\.rcpt_tos), ["a@example.com", "b@example.com"], fault)
        }
    }

    func testAStalledRelayMeetsTheDeadlineAndTheJobIsDeferred() throws {
        for fault in ["greeting:stall:30", "ehlo:stall:30", "mail:stall:30", "rcpt:stall:30", "data:stall:30", "dot:stall:30"] {
            let fixture = try SpoolFixture("stall")
            let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", fault])
            defer { relay.stop() }
            try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "SMTP_COMMAND_TIMEOUT=1s",
                                   "SMTP_GREETING_TIMEOUT=1s", "SMTP_DATA_INIT_TIMEOUT=1s", "SMTP_DATA_DONE_TIMEOUT=1s"])
            try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com"]))
            let started = Date()
            try fixture.drain(timeout: 20)
            XCTAssertLessThan(Date().timeIntervalSince(started), 10, "\(fault): the deadline was not kept")
            XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"], fault)
        }
    }

    func testAMessageOverTheRelaysSizeLimitFailsWithAClearDiagnostic() throws {
        let fixture = try SpoolFixture("size")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--ext", "SIZE 4000"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        let big = "Subject: big\r\n\r\n" + String(repeating: "x\r\n", count: 3000)
        try fixture.drop("A1.MAIL", job(from: "o@example.org", to: ["a@example.com"], body: big))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        // The message never went out; the DSN (headers only, small) did.
        let records = try relay.records()
        XCTAssertEqual(records.count, 1)
        let report = records.first.map(text) ?? ""
        XCTAssertTrue(report.contains("Status: 5.3.4"), report)
        XCTAssertTrue(report.contains("exceeds the relay's SIZE limit of 4000"), report)
    }
}
