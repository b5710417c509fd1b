// PIPELINING across transactions against the scripted relay that checks RFC 2920's
// grouping rules: the message and final dot of one transaction go in the same write as the
// next MAIL, RCPT and DATA, the first transaction's result arrives while the second is in
// flight, and nothing breaks the rules or arrives twice.

import Foundation
import XCTest
import SMTPClient
import SpoolKit

final class OverlapTests: XCTestCase {
    struct Message: MessageSource {
        var bytes: [UInt8]
        var wireSize: Int64 { Int64(bytes.count) }
        func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws { try bytes.withUnsafeBytes { try sink($0) } }
    }

    func testTheFirstTransactionIsDecidedWhileTheSecondIsInFlight() throws {
        let dir = try makeTemporaryDirectory("overlap")
        let relay = try RecordingRelay(in: dir, script: "fault_server.py", arguments: ["--lockstep-check"])
        defer { relay.stop() }
        let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: SessionSettings(heloName: "test.example"))
        try session.open()
        let message = Message(bytes: Array("Subject: x\r\n\r\n..dotted\r\n".utf8))
        let one = TransactionTag(1), two = TransactionTag(2)
        session.submit(OutgoingTransaction(tag: one, envelope: Envelope(sender: "a@b.org", recipients: [EnvelopeRecipient(address: "one@d.org")]), message: message))
        XCTAssertEqual(session.advance(), [], "after 354 the first message and dot are held for the next envelope")
        XCTAssertTrue(session.hasRoom)
        session.submit(OutgoingTransaction(tag: two, envelope: Envelope(sender: "a@b.org", recipients: [EnvelopeRecipient(address: "two@d.org")]), message: message))
        let first = session.advance()
        XCTAssertEqual(first.map(\.tag), [one], "decided by the reply read with the second envelope's")
        XCTAssertEqual(first.first?.outcomes.map(\.kind), [.delivered])
        XCTAssertEqual(session.transactionsInFlight, 1)
        let rest = session.settle()
        XCTAssertEqual(rest.map(\.tag), [two])
        XCTAssertEqual(rest.first?.outcomes.map(\.kind), [.delivered])
        XCTAssertEqual(session.close(), [])
        XCTAssertNil(relay.file("violations.txt"), relay.file("violations.txt") ?? "")
        let records = try relay.records()
        XCTAssertEqual(records.map(\.rcpt_tos), [["one@d.org"], ["two@d.org"]])
        XCTAssertEqual(records.map { String(decoding: $0.data, as: UTF8.self) }, Array(repeating: "Subject: x\r\n\r\n.dotted\r\n", count: 2))
    }

    func testAllJobsThroughTheOverlapArriveOnceUnderTheRFC2920Check() throws {
        let fixture = try SpoolFixture("overlapjobs")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--lockstep-check"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "MAXBSMTP=100"])
        let jobs = GeneratedJobs.mixed(count: 60, seed: 23)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertNil(relay.file("violations.txt"), relay.file("violations.txt") ?? "")
        assertExactlyOnce(jobs, received: try relay.received())
    }
}
