// poold against real MTAs nobody here wrote, as its relay: Exim 4.96 (PIPELINING,
// CHUNKING, STARTTLS, SMTPS, AUTH), OpenSMTPD 6.8 (no PIPELINING), a private Postfix 3.7
// (CHUNKING, STARTTLS, per-recipient 554) and smtp-sink's fault flags. Every relay
// delivers into files; each check is exactly-once and byte for byte (minus the relay's
// trace headers). What these relays show that poold does not yet do well lives in
// InteropEdgeTests. The relays: Support/Exim.swift, OpenSMTPD.swift, Postfix.swift.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class InteropTests: XCTestCase {
    func assertAllDone(_ fixture: SpoolFixture, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(fixture.jobsLeft(), [], "jobs left in the spool", file: file, line: line)
        XCTAssertEqual(fixture.deferredJobs(), [], "jobs deferred", file: file, line: line)
        XCTAssertEqual(fixture.badJobs(), [], "jobs refused", file: file, line: line)
    }

    // MARK: - Exim

    func testAPipelinedDrainThroughEximDeliversEveryMessageOnceAndEximSeesPipelining() throws {
        let fixture = try SpoolFixture("exim-pipelining")
        let exim = try EximRelay(in: fixture.directory, .init(chunking: false))
        defer { exim.stop() }
        let jobs = GeneratedJobs.mixed(count: 30, seed: 11)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(exim.port)"] + interopTimeouts)
        try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
        let accepted = exim.acceptLines
        XCTAssertGreaterThanOrEqual(accepted.count, jobs.messages.count)
        // Exim's +pipelining: "L." = the client pipelined (PIPECONNECT offered, not used).
        let notPipelined = accepted.filter { !$0.contains(" L. ") }
        XCTAssertEqual(notPipelined.count, 0, "accepted without pipelining, e.g. \(notPipelined.first ?? "")")
        XCTAssertEqual(Set(exim.dataCommands), ["DATA"], "without CHUNKING every message goes by DATA")
    }

    func testBDATThroughEximDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("exim-bdat")
        let exim = try EximRelay(in: fixture.directory)  // 4.96 offers CHUNKING
        defer { exim.stop() }
        let jobs = GeneratedJobs.mixed(count: 24, seed: 12)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(exim.port)"] + interopTimeouts)
        try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
        let commands = exim.dataCommands
        XCTAssertEqual(commands.count, exim.acceptLines.count)
        XCTAssertTrue(!commands.isEmpty && commands.allSatisfy { $0.hasPrefix("BDAT ") && $0.hasSuffix(" LAST") }, "\(Set(commands))")
        // "K": the message came by CHUNKING.
        XCTAssertTrue(exim.acceptLines.allSatisfy { $0.contains(" K ") }, exim.acceptLines.first ?? "")
    }

#if TLS
    func testVerifiedSTARTTLSWithEximDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("exim-starttls")
        let certs = try TLSTests.Certificates(in: fixture.directory)
        let exim = try EximRelay(in: fixture.directory, .init(certificate: (certs.directory + "/server.pem", certs.directory + "/server.key")))
        defer { exim.stop() }
        let jobs = GeneratedJobs.mixed(count: 12, seed: 13)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(exim.port);TLS=require;TLS_CA=\(certs.ca)"] + interopTimeouts)
        let daemon = try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
        XCTAssertTrue(exim.acceptLines.allSatisfy { $0.contains(" X=TLS1.") }, exim.acceptLines.first ?? "")
        let shown = daemon.board.all.first?.tls ?? "none"
        XCTAssertTrue(shown.hasPrefix("TLSv1.") && shown.hasSuffix("(verified)"), "status shows \(shown)")
    }

    func testSMTPSWithEximDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("exim-smtps")
        let certs = try TLSTests.Certificates(in: fixture.directory)
        let exim = try EximRelay(in: fixture.directory, .init(certificate: (certs.directory + "/server.pem", certs.directory + "/server.key"), smtps: true))
        defer { exim.stop() }
        let jobs = GeneratedJobs.mixed(count: 8, seed: 14)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(exim.smtpsPort!);TLS=smtps;TLS_CA=\(certs.ca)"] + interopTimeouts)
        try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
        XCTAssertTrue(exim.acceptLines.allSatisfy { $0.contains(" P=esmtps ") && $0.contains(" X=TLS1.") }, exim.acceptLines.first ?? "")
    }

    func testAUTHPLAINAndLOGINWithEximDeliverAsTheConfiguredUser() throws {
        for mechanism in ["PLAIN", "LOGIN"] {
            let fixture = try SpoolFixture("exim-auth-\(mechanism)")
            let certs = try TLSTests.Certificates(in: fixture.directory)
            let secret = "poold-interop-\(mechanism.lowercased())-42"
            let exim = try EximRelay(in: fixture.directory, .init(certificate: (certs.directory + "/server.pem", certs.directory + "/server.key"),
                                                                  authUser: "lists", authSecret: secret, authMechanisms: [mechanism]))
            defer { exim.stop() }
            let secretFile = fixture.directory + "/relay.secret"
            try (secret + "\n").write(toFile: secretFile, atomically: false, encoding: .utf8)
            chmod(secretFile, 0o600)
            let jobs = GeneratedJobs.mixed(count: 6, seed: 15)
            try fixture.drop(jobs)
            try fixture.configure(["SMTP_FORWARD_1=localhost:\(exim.port);TLS=require;TLS_CA=\(certs.ca);AUTH=lists;SECRET=\(secretFile)"] + interopTimeouts)
            try fixture.drain()
            assertAllDone(fixture)
            assertExactlyOnce(jobs, received: try exim.delivered(comparedWith: jobs))
            let tag = " A=\(mechanism.lowercased()):lists "
            XCTAssertTrue(!exim.acceptLines.isEmpty && exim.acceptLines.allSatisfy { $0.contains(tag) }, "\(mechanism): \(exim.acceptLines.first ?? "")")
        }
    }
#endif

    // MARK: - OpenSMTPD

    func testLockstepWithOpenSMTPDDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("opensmtpd-lockstep")
        let smtpd = try OpenSMTPDRelay(in: fixture.directory)
        defer { smtpd.stop() }
        let jobs = GeneratedJobs.mixed(count: 18, seed: 16)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(smtpd.port)"] + interopTimeouts)
        let log = try capturingDaemonLog(in: fixture.directory) { try fixture.drain() }
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try smtpd.delivered(comparedWith: jobs))
        XCTAssertTrue(log.contains("connected to 127.0.0.1:\(smtpd.port) (no PIPELINING"), log)
        let messages = smtpd.log.split(separator: "\n").filter { $0.contains(" smtp message ") }.count
        XCTAssertLessThan(messages, 100, "the premise: fewer messages than OpenSMTPD's per-session limit")
        let refused = smtpd.log.split(separator: "\n").filter { $0.contains("failed-command") }
        XCTAssertEqual(refused.count, 0, "OpenSMTPD refused commands, e.g. \(refused.first ?? "")")
    }

    // MARK: - Postfix

    func testBDATThroughPostfixDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("postfix-bdat")
        let postfix = try PostfixRelay(in: fixture.directory)
        defer { postfix.stop() }
        let jobs = GeneratedJobs.mixed(count: 24, seed: 17)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(postfix.port)"] + interopTimeouts)
        try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try postfix.delivered(comparedWith: jobs))
        // smtpd's closing line counts the commands of the session: "bdat=N", no "data=".
        let sessions = postfix.log.split(separator: "\n").filter { $0.contains(" disconnect from ") && $0.contains(" mail=") }
        XCTAssertFalse(sessions.isEmpty)
        XCTAssertTrue(sessions.allSatisfy { $0.contains(" bdat=") && !$0.contains(" data=") }, sessions.joined(separator: "\n"))
    }

#if TLS
    func testVerifiedSTARTTLSWithPostfixDeliversEveryMessageOnce() throws {
        let fixture = try SpoolFixture("postfix-starttls")
        let certs = try TLSTests.Certificates(in: fixture.directory)
        let postfix = try PostfixRelay(in: fixture.directory, .init(certificate: (certs.directory + "/server.pem", certs.directory + "/server.key")))
        defer { postfix.stop() }
        let jobs = GeneratedJobs.mixed(count: 12, seed: 18)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(postfix.port);TLS=require;TLS_CA=\(certs.ca)"] + interopTimeouts)
        let daemon = try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try postfix.delivered(comparedWith: jobs))
        XCTAssertTrue(postfix.log.contains("TLS connection established from"), postfix.log.suffix(2000).description)
        let shown = daemon.board.all.first?.tls ?? "none"
        XCTAssertTrue(shown.hasPrefix("TLSv1.") && shown.hasSuffix("(verified)"), "status shows \(shown)")
    }
#endif

    func testAPerRecipient554FromPostfixBouncesThatRecipientOnlyAndDeliversTheRest() throws {
        let fixture = try SpoolFixture("postfix-554")
        let postfix = try PostfixRelay(in: fixture.directory)
        defer { postfix.stop() }
        let message = Array("From: List <owner@lists.example.org>\r\nSubject: 554\r\nX-Test-Id: t554\r\n\r\nhello\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "owner@lists.example.org",
                                                    to: ["a@example.com", "nosuch@example.com", "b@example.net"]))
        // POOL=A: the DSN (default pool) stays in the spool for the test to read.
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(postfix.port);POOL=A"] + interopTimeouts)
        try fixture.drain()
        XCTAssertEqual(fixture.deferredJobs(), [])
        let received = try postfix.delivered()
        XCTAssertEqual(received.flatMap(\.recipients).sorted(), ["a@example.com", "b@example.net"])
        XCTAssertTrue(received.allSatisfy { $0.data == message })
        let dsns = fixture.spooledDSNs()
        XCTAssertEqual(dsns.count, 1, "one DSN")
        let dsn = dsns.first ?? ""
        for fragment in ["MAIL FROM:<>", "RCPT TO:<owner@lists.example.org>", "Final-Recipient: rfc822; nosuch@example.com",
                         "Action: failed", "Status: 5.7.1", "Diagnostic-Code: smtp; 554 5.7.1"] {
            XCTAssertTrue(dsn.contains(fragment), "the DSN lacks \(fragment): \(dsn)")
        }
        XCTAssertFalse(dsn.contains("Final-Recipient: rfc822; a@example.com"))
    }

    // MARK: - smtp-sink's fault flags

    /// One job A1.MAIL (two recipients) against `smtp-sink FLAG COMMAND`, drained once.
    func drainAgainstSmtpSink(_ flag: String, _ command: String) throws -> (SpoolFixture, SmtpSink) {
        let fixture = try SpoolFixture("sink-\(flag.dropFirst())-\(command == "." ? "dot" : command)")
        let sink = try SmtpSink(in: fixture.directory, extraArguments: [flag, command])
        let message = Array("From: List <owner@lists.example.org>\r\nSubject: fault\r\nX-Test-Id: fault\r\n\r\nhello\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "owner@lists.example.org", to: ["a@example.com", "b@example.net"]))
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port);POOL=A", "RETRY_SCHEDULE=1h"] + interopTimeouts)
        try fixture.drain()
        return (fixture, sink)
    }

    func testSmtpSinkWithoutFaultsGetsEveryMessageOnce() throws {
        let fixture = try SpoolFixture("sink-clean")
        let sink = try SmtpSink(in: fixture.directory)
        defer { sink.stop() }
        let jobs = GeneratedJobs.mixed(count: 18, seed: 19)
        try fixture.drop(jobs)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port)"] + interopTimeouts)
        try fixture.drain()
        assertAllDone(fixture)
        assertExactlyOnce(jobs, received: try sink.received())
    }

    func testSmtpSinkHardRejectionAtMailRcptDataOrDotFailsTheJobWithADSN() throws {
        for command in ["mail", "rcpt", "data", "."] {
            let (fixture, sink) = try drainAgainstSmtpSink("-f", command)
            defer { sink.stop() }
            XCTAssertEqual(fixture.deferredJobs(), [], "-f \(command)")
            XCTAssertFalse(fixture.jobsLeft().contains("A1.MAIL"), "-f \(command): the job is done")
            let dsns = fixture.spooledDSNs()
            XCTAssertEqual(dsns.count, 1, "-f \(command): one DSN")
            let dsn = dsns.first ?? ""
            for fragment in ["MAIL FROM:<>", "RCPT TO:<owner@lists.example.org>", "Final-Recipient: rfc822; a@example.com",
                             "Final-Recipient: rfc822; b@example.net", "Action: failed", "Status: 5."] {
                XCTAssertTrue(dsn.contains(fragment), "-f \(command): the DSN lacks \(fragment)")
            }
        }
    }

    func testSmtpSinkSoftRejectionAtMailRcptDataOrDotDefersTheJob() throws {
        for command in ["mail", "rcpt", "data", "."] {
            let (fixture, sink) = try drainAgainstSmtpSink("-r", command)
            defer { sink.stop() }
            XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"], "-r \(command)")
            XCTAssertEqual(fixture.jobsLeft(), [], "-r \(command): no DSN for a deferral")
        }
    }

    func testSmtpSinkHangingUpAtMailRcptDataOrDotDefersTheJob() throws {
        for command in ["mail", "rcpt", "data", "."] {
            let (fixture, sink) = try drainAgainstSmtpSink("-q", command)
            defer { sink.stop() }
            XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"], "-q \(command)")
            XCTAssertEqual(fixture.jobsLeft(), [], "-q \(command): no DSN for a deferral")
        }
    }
}
