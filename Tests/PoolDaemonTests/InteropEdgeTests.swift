// The rough edges real relays showed (issue 11), each against the relay that showed it:
//   1. OpenSMTPD's 452 to MAIL FROM after 100 messages in a session must not strand the
//      worker: a 4xx to MAIL on a reused connection means "new connection, at once".
//   2. A 421 (Exim after smtp_accept_max_per_connection messages; Postfix after
//      smtpd_hard_error_limit errors) must not cost a job a retry interval: what the 421
//      left undecided goes on a new connection in the same drain.
//   3. 8-bit octets never go to a relay without 8BITMIME (smtp-sink -8, a HELO-only
//      smtp-sink): the message arrives as 7-bit MIME, or fails with a DSN, status 5.6.3.
//   4. A drain against an unavailable relay (421 greeting, TLS verification failure,
//      AUTH 535) names every job it defers, and its closing counts add up.
//   5. A DSN's Remote-MTA is "dns; host", without the port.
// These fail against the delivery core of b0d292f; the rewritten core is to fix them.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class InteropEdgeTests: XCTestCase {
    // MARK: 1. OpenSMTPD's per-session limit

    func testOpenSMTPDs452AfterAHundredMessagesDoesNotStrandTheWorker() throws {
        let fixture = try SpoolFixture("edge-opensmtpd-452")
        let smtpd = try OpenSMTPDRelay(in: fixture.directory)
        defer { smtpd.stop() }
        let jobs = GeneratedJobs.singles(count: 150, label: "limit")
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(smtpd.port)"] + interopTimeouts)
        try fixture.drain(timeout: 300)
        XCTAssertEqual(fixture.deferredJobs().count, 0, "deferred after OpenSMTPD's 452, e.g. \(fixture.deferredJobs().prefix(3))")
        XCTAssertEqual(fixture.jobsLeft(), [])
        assertExactlyOnce(jobs, received: try smtpd.delivered(comparedWith: jobs))
        XCTAssertTrue(smtpd.log.contains("Too many messages sent"), "the premise: OpenSMTPD's session limit was reached")
    }

    // MARK: 2. A 421 costs no job a retry interval

    func testExims421AfterFiftyMessagesSendsThatJobOnANewConnectionInTheSameDrain() throws {
        let fixture = try SpoolFixture("edge-exim-421")
        let exim = try EximRelay(in: fixture.directory, .init(maxMessagesPerConnection: 50))
        defer { exim.stop() }
        let jobs = GeneratedJobs.singles(count: 60, label: "per-connection")
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(exim.port)"] + interopTimeouts)  // RETRY_SCHEDULE: 5m first
        try fixture.drain()
        XCTAssertEqual(fixture.deferredJobs(), [], "deferred for a retry interval after Exim's 421")
        XCTAssertEqual(fixture.jobsLeft(), [])
        assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
        XCTAssertTrue(exim.log.contains("rejected MAIL command H=(lists.example.org) [127.0.0.1]: too many messages in one connection")
                        || exim.log.contains(": too many messages in one connection"), "the premise: Exim said 421 after 50 messages")
    }

    func testPostfixs421AfterTwentyErrorsSendsTheRestOnANewConnectionInTheSameDrain() throws {
        let fixture = try SpoolFixture("edge-postfix-421")
        let postfix = try PostfixRelay(in: fixture.directory)  // smtpd_hard_error_limit = 20
        defer { postfix.stop() }
        let good = (1...5).map { "reader\($0)@example.com" }
        let bad = (1...25).map { "nosuch\($0)@example.com" }
        let message = Array("From: List <owner@lists.example.org>\r\nSubject: errors\r\nX-Test-Id: errors\r\n\r\nhello\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "owner@lists.example.org", to: good + bad))
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(postfix.port);POOL=A"] + interopTimeouts)
        try fixture.drain()
        XCTAssertEqual(fixture.deferredJobs(), [], "deferred after Postfix's 421 (too many errors)")
        let received = try postfix.delivered()
        XCTAssertEqual(received.flatMap(\.recipients).sorted(), good.sorted(), "each good recipient once")
        let finalRecipient = "Final-Recipient: rfc822; "
        let failed = fixture.spooledDSNs().flatMap { dsn in
            dsn.components(separatedBy: "\r\n").filter { $0.hasPrefix(finalRecipient) }.map { String($0.dropFirst(finalRecipient.count)) }
        }
        XCTAssertEqual(failed.sorted(), bad.sorted(), "each refused recipient in a DSN once")
        XCTAssertTrue(postfix.log.contains("too many errors"), "the premise: Postfix said 421 after 20 errors")
    }

    // MARK: 3. 8-bit octets and a relay without 8BITMIME

    /// A job declaring BODY=8BITMIME.
    func eightBitJob(_ message: String) -> [UInt8] {
        var job = JobWriter.bsmtp(message: Array(message.utf8), from: "owner@lists.example.org", to: ["reader@example.com"])
        let mail = Array("MAIL FROM:<owner@lists.example.org>".utf8)
        job.insert(contentsOf: Array(" BODY=8BITMIME".utf8), at: mail.count)
        return job
    }

    let mimeText = "From: List <owner@lists.example.org>\r\nSubject: mime\r\nX-Test-Id: mime\r\nMIME-Version: 1.0\r\n"
        + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, naïve café.\r\n.a line with a dot\r\n"
    let bareText = "From: List <owner@lists.example.org>\r\nSubject: bare\r\nX-Test-Id: bare\r\n\r\nGrüße aus Köln.\r\n"

    /// What `original` must look like at a relay without 8BITMIME: every octet 7-bit, the
    /// body decoding to the original's, the header unchanged but for the MIME fields.
    func assertArrivedAs7BitMIME(_ original: String, _ received: [UInt8]?, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let received else { return XCTFail("\(label): not received", file: file, line: line) }
        XCTAssertFalse(received.contains { $0 >= 0x80 }, "\(label): arrived with 8-bit octets", file: file, line: line)
        let before = MessageParts(Array(original.utf8))
        let after = MessageParts(received)
        let encoding = after.field("Content-Transfer-Encoding")?.lowercased()
        XCTAssertTrue(encoding == "quoted-printable" || encoding == "base64", "\(label): Content-Transfer-Encoding \(encoding ?? "none")", file: file, line: line)
        XCTAssertEqual(TransferDecoding.body(of: after), before.body, "\(label): the body does not decode to the original", file: file, line: line)
        XCTAssertEqual(after.field("MIME-Version"), "1.0", label, file: file, line: line)
        let mimeFields: Set<String> = ["mime-version", "content-type", "content-transfer-encoding"]
        func others(_ parts: MessageParts) -> [String] {
            TraceHeaders.fields(of: parts.header).fields.filter { !mimeFields.contains($0.name) }.map { String(decoding: parts.header[$0.range], as: UTF8.self) }
        }
        XCTAssertEqual(others(after), others(before), "\(label): other header fields changed", file: file, line: line)
        if let type = before.field("Content-Type") { XCTAssertEqual(after.field("Content-Type"), type, label, file: file, line: line) }
    }

    func drainEightBit(against sinkFlag: String, label: String) throws {
        let fixture = try SpoolFixture("edge-8bit-\(label)")
        let sink = try SmtpSink(in: fixture.directory, extraArguments: [sinkFlag])
        defer { sink.stop() }
        try fixture.drop("A1.MAIL", eightBitJob(mimeText))
        try fixture.drop("A2.MAIL", eightBitJob(bareText))
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port);POOL=A"] + interopTimeouts)
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [], "\(label): jobs or DSNs left")
        XCTAssertEqual(fixture.deferredJobs(), [], label)
        let received = try sink.received()
        XCTAssertEqual(received.count, 2, "\(label): messages received")
        assertArrivedAs7BitMIME(mimeText, received.first { $0.tag == "mime" }?.data, "\(label), declared 8bit")
        assertArrivedAs7BitMIME(bareText, received.first { $0.tag == "bare" }?.data, "\(label), no MIME")
        let dumps = try FileManager.default.contentsOfDirectory(atPath: sink.dumps).map {
            (try? String(contentsOfFile: sink.dumps + "/" + $0, encoding: .isoLatin1)) ?? ""
        }
        XCTAssertFalse(dumps.contains { $0.contains("BODY=8BITMIME") }, "\(label): BODY=8BITMIME sent to a relay that does not offer it")
    }

    func testAnEightBitMessageReachesARelayWithout8BITMIMEAsSevenBitMIME() throws {
        try drainEightBit(against: "-8", label: "smtp-sink -8")
    }

    func testAnEightBitMessageReachesAHELOOnlyRelayAsSevenBitMIME() throws {
        try drainEightBit(against: "-e", label: "smtp-sink -e")
    }

    func testEightBitOctetsInAHeaderFailWithA563DSNWhenTheRelayLacks8BITMIME() throws {
        let fixture = try SpoolFixture("edge-8bit-header")
        let sink = try SmtpSink(in: fixture.directory, extraArguments: ["-8"])
        defer { sink.stop() }
        try fixture.drop("A1.MAIL", eightBitJob("From: List <owner@lists.example.org>\r\nSubject: Grüße\r\nX-Test-Id: header\r\n\r\nhello\r\n"))
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port);POOL=A"] + interopTimeouts)
        try fixture.drain()
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(try sink.received().count, 0, "nothing sent")
        let dsns = fixture.spooledDSNs()
        XCTAssertEqual(dsns.count, 1, "one DSN")
        for fragment in ["RCPT TO:<owner@lists.example.org>", "Final-Recipient: rfc822; reader@example.com", "Action: failed", "Status: 5.6.3"] {
            XCTAssertTrue(dsns.first?.contains(fragment) == true, "the DSN lacks \(fragment): \(dsns.first ?? "none")")
        }
    }

    /// EIGHTBIT=pass: the operator knows the relay is 8-bit clean; the message goes as it is.
    func testEIGHTBITPassSendsTheMessageAsItIsToARelayWithout8BITMIME() throws {
        let fixture = try SpoolFixture("edge-8bit-pass")
        let sink = try SmtpSink(in: fixture.directory, extraArguments: ["-8"])
        defer { sink.stop() }
        try fixture.drop("A1.MAIL", eightBitJob(mimeText))
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port);POOL=A;EIGHTBIT=pass"] + interopTimeouts)
        try fixture.drain()
        XCTAssertEqual(try sink.received().first?.data, Array(mimeText.utf8))
    }

    /// poolctl submit says BODY=8BITMIME for a message with 8-bit octets, and only then.
    func testPoolctlSubmitDeclares8BITMIMEForAnEightBitMessage() throws {
        let fixture = try SpoolFixture("edge-8bit-submit")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25"])
        func submit(_ text: String) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try TestTools.binDirectory + "/poolctl")
            process.arguments = ["--config", fixture.configPath, "submit", "--from", "owner@lists.example.org", "--to", "reader@example.com"]
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let name = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            process.waitUntilExit()
            return try String(contentsOfFile: fixture.spoolDirectory + "/" + (name.split(separator: "\n").last.map(String.init) ?? ""), encoding: .utf8)
        }
        XCTAssertTrue(try submit(mimeText).hasPrefix("MAIL FROM:<owner@lists.example.org> BODY=8BITMIME\r\n"))
        XCTAssertTrue(try submit("Subject: plain\r\n\r\nhello\r\n").hasPrefix("MAIL FROM:<owner@lists.example.org>\r\n"))
    }

    // MARK: 4. Every deferral named, and counts that add up

    /// Three one-recipient jobs drained against an unavailable relay (`worker`). A drain
    /// tries each worker's relay once (DaemonTests): the job tried is deferred, the others
    /// wait in the spool for the next run. Each deferred job must be named in a log line
    /// that says so, and the closing line must count it.
    func assertEveryDeferralNamed(_ fixture: SpoolFixture, worker: String, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let jobs = GeneratedJobs.singles(count: 3, label: "down")
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=\(worker)", "HELO_NAME=lists.example.org"] + interopTimeouts)
        let log = try capturingDaemonLog(in: fixture.directory) { try fixture.drain() }
        let deferred = fixture.deferredJobs()
        XCTAssertFalse(deferred.isEmpty, "\(label): the job tried is deferred", file: file, line: line)
        XCTAssertEqual((deferred + fixture.jobsLeft()).sorted(), jobs.files.map(\.name), "\(label): every job is still in the spool", file: file, line: line)
        for name in deferred {
            let lines = log.split(separator: "\n").filter { $0.contains(name) && $0.lowercased().contains("defer") && !$0.contains("deferred=0") }
            XCTAssertFalse(lines.isEmpty, "\(label): no log line says \(name) was deferred; the log:\n\(log)", file: file, line: line)
        }
        guard let counts = ClosingCounts(log: log) else { return XCTFail("\(label): no closing line", file: file, line: line) }
        XCTAssertEqual(counts, ClosingCounts(delivered: 0, deferred: deferred.count, failed: 0),
                       "\(label): the closing counts (one recipient per job)", file: file, line: line)
    }

    func testADrainAgainstARelayThatGreetsWith421NamesEveryDeferredJob() throws {
        let fixture = try SpoolFixture("edge-down-421")
        let sink = try SmtpSink(in: fixture.directory, extraArguments: ["-Q", "connect"])
        defer { sink.stop() }
        try assertEveryDeferralNamed(fixture, worker: "127.0.0.1:\(sink.port)", "421 greeting")
    }

#if TLS
    func testADrainAgainstARelayThatFailsTLSVerificationNamesEveryDeferredJob() throws {
        let fixture = try SpoolFixture("edge-down-tls")
        let certs = try TLSTests.Certificates(in: fixture.directory)
        let exim = try EximRelay(in: fixture.directory, .init(certificate: (certs.directory + "/stranger.pem", certs.directory + "/stranger.key")))
        defer { exim.stop() }
        try assertEveryDeferralNamed(fixture, worker: "localhost:\(exim.port);TLS=require;TLS_CA=\(certs.ca)", "TLS verification")
    }

    func testADrainAgainstARelayThatRefusesAUTHNamesEveryDeferredJob() throws {
        let fixture = try SpoolFixture("edge-down-auth")
        let certs = try TLSTests.Certificates(in: fixture.directory)
        let exim = try EximRelay(in: fixture.directory, .init(certificate: (certs.directory + "/server.pem", certs.directory + "/server.key"),
                                                              authUser: "lists", authSecret: "the-right-one"))
        defer { exim.stop() }
        let secret = fixture.directory + "/relay.secret"
        try "a-wrong-one\n".write(toFile: secret, atomically: false, encoding: .utf8)
        chmod(secret, 0o600)
        try assertEveryDeferralNamed(fixture, worker: "localhost:\(exim.port);TLS=require;TLS_CA=\(certs.ca);AUTH=lists;SECRET=\(secret)", "AUTH 535")
    }
#endif

    // MARK: 5. Remote-MTA without the port

    func testADSNsRemoteMTANamesTheRelayHostWithoutItsPort() throws {
        let fixture = try SpoolFixture("edge-remote-mta")
        let postfix = try PostfixRelay(in: fixture.directory)
        defer { postfix.stop() }
        let message = Array("From: List <owner@lists.example.org>\r\nSubject: dsn\r\nX-Test-Id: dsn\r\n\r\nhello\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "owner@lists.example.org", to: ["nosuch@example.com"]))
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(postfix.port);POOL=A"] + interopTimeouts)
        try fixture.drain()
        let dsn = fixture.spooledDSNs().first ?? ""
        let remote = dsn.components(separatedBy: "\r\n").filter { $0.hasPrefix("Remote-MTA:") }
        XCTAssertEqual(remote, ["Remote-MTA: dns; localhost"], "in the DSN:\n\(dsn)")
    }
}
