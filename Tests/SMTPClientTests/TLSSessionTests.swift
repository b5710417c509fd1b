// SMTPSession's TLS against a real server (aiosmtpd with STARTTLS or implicit TLS) and
// certificates made for each test: what is verified, what is refused, and that refused
// mail never leaves in plain text.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import SMTPClient

final class TLSSessionTests: XCTestCase {
    var directory = ""
    var certs: TestCertificates!

    override func setUpWithError() throws {
        directory = try TLSTestTools.temporaryDirectory("session")
        certs = try TestCertificates(in: directory)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func starttlsRelay(_ cert: (String, String), _ extra: [String] = []) throws -> TLSRecorder {
        try TLSRecorder(in: directory, ["--starttls", cert.0, cert.1] + extra)
    }

    /// Opens and expects a TLS failure; returns its text.
    private func expectTLSFailure(_ session: SMTPSession, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try session.open()
            XCTFail("open() succeeded; TLS \(session.tlsDescription ?? "none")", file: file, line: line)
            return ""
        } catch {
            guard case .tls(let text) = error.kind else {
                XCTFail("not a TLS failure: \(error)", file: file, line: line)
                return "\(error)"
            }
            XCTAssertFalse(session.isOpen, file: file, line: line)
            return text
        }
    }

#if TLS
    func testVerifiedSTARTTLSDeliversOverTLSAndForgetsThePlainCapabilities() throws {
        let relay = try starttlsRelay(certs.server, ["--require-starttls", "--pipelining"])
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        try session.open()
        XCTAssertTrue(session.tlsVerified)
        let tls = try XCTUnwrap(session.tlsDescription)
        XCTAssertTrue(tls.hasPrefix("TLSv1.2 ") || tls.hasPrefix("TLSv1.3 "), tls)
        // The EHLO after STARTTLS is the one that counts: aiosmtpd no longer offers STARTTLS.
        XCTAssertFalse(session.capabilities.startTLS)
        XCTAssertTrue(session.capabilities.pipelining)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        let records = try relay.records()
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records.first?["tls"] as? String, tls)
    }
#endif

#if TLS
    func testAnIPAddressIsCheckedAgainstTheCertificatesAddresses() throws {
        let relay = try starttlsRelay(certs.server)
        let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        try session.open()
        XCTAssertTrue(session.tlsVerified)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertNotNil(try relay.records().first?["tls"] as? String)
    }
#endif

#if TLS
    func testACertificateFromAnotherCAIsRefusedAndNothingIsSent() throws {
        let relay = try starttlsRelay(certs.stranger)
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        let text = expectTLSFailure(session)
        XCTAssertTrue(text.contains("localhost"), text)
        XCTAssertTrue(text.contains("certificate verification failed: unable to get local issuer certificate"), text)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.deferred])
        XCTAssertTrue(relay.events("mail").isEmpty)
        XCTAssertTrue(try relay.records().isEmpty)
    }
#endif

#if TLS
    func testTheSystemStoreDoesNotTrustATestCA() throws {
        let relay = try starttlsRelay(certs.server)
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require))
        let text = expectTLSFailure(session)
        XCTAssertTrue(text.contains("certificate verification failed"), text)
    }
#endif

#if TLS
    func testACertificateForAnotherNameIsRefused() throws {
        let relay = try starttlsRelay(certs.wrongName)
        let byName = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        let text = expectTLSFailure(byName)
        XCTAssertTrue(text.contains("TLS handshake with localhost failed: certificate verification failed: hostname mismatch"), text)
        let byAddress = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        let other = expectTLSFailure(byAddress)
        XCTAssertTrue(other.contains("127.0.0.1") && other.contains("IP address mismatch"), other)
        XCTAssertTrue(relay.events("mail").isEmpty)
    }
#endif

    func testRequireAgainstARelayWithoutSTARTTLSSendsNothing() throws {
        let relay = try TLSRecorder(in: directory, [])
        let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        let text = expectTLSFailure(session)
        if SMTPSession.isTLSAvailable {
            XCTAssertTrue(text.contains("127.0.0.1 does not offer STARTTLS"), text)
        } else {
            XCTAssertTrue(text.contains("built without TLS"), text)
        }
        XCTAssertTrue(relay.events("mail").isEmpty)
    }

#if TLS
    func testSMTPSDeliversOverVerifiedTLSFromTheFirstByte() throws {
        let relay = try TLSRecorder(in: directory, ["--smtps", certs.server.0, certs.server.1])
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .smtps, ca: certs.ca))
        try session.open()
        XCTAssertTrue(session.tlsVerified)
        XCTAssertEqual(session.greeting?.code, 220)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        XCTAssertEqual(deliverOne(session, tag: "second").map(\.kind), [.delivered])
        _ = session.close()
        let records = try relay.records()
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(records.compactMap { $0["tls"] as? String }.count, 2)
        XCTAssertEqual(relay.connectionCount(), 1, "both messages over the one TLS connection")
    }
#endif

#if TLS
    func testSMTPSWithAnUntrustedCertificateIsRefused() throws {
        let relay = try TLSRecorder(in: directory, ["--smtps", certs.stranger.0, certs.stranger.1])
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .smtps, ca: certs.ca))
        let text = expectTLSFailure(session)
        XCTAssertTrue(text.contains("certificate verification failed"), text)
        XCTAssertTrue(relay.events("mail").isEmpty)
    }
#endif

    func testMayAgainstARelayWithoutSTARTTLSSendsPlainText() throws {
        let relay = try TLSRecorder(in: directory, [])
        let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: .may))
        try session.open()
        XCTAssertNil(session.tlsDescription)
        XCTAssertNil(session.plaintextFallback)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        let record = try XCTUnwrap(relay.records().first)
        XCTAssertTrue(record["tls"] is NSNull, "\(record["tls"] ?? "missing")")
    }

#if TLS
    func testMayEncryptsWithoutCheckingTheCertificate() throws {
        let relay = try starttlsRelay(certs.stranger)
        let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: .may))
        try session.open()
        XCTAssertNotNil(session.tlsDescription)
        XCTAssertFalse(session.tlsVerified)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertNotNil(try relay.records().first?["tls"] as? String)
    }
#endif

    func testNoneNeverAsksForSTARTTLS() throws {
        let relay = try starttlsRelay(certs.server)
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .none))
        try session.open()
        XCTAssertTrue(session.capabilities.startTLS)
        XCTAssertNil(session.tlsDescription)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertTrue(try relay.records().first?["tls"] is NSNull)
    }

#if TLS
    func testMayFallsBackToPlainTextOnceWhenTheHandshakeFails() throws {
        let relay = try TLSRecorder(in: directory, ["--broken-starttls"])
        let notices = NoticeLog()
        let session = SMTPSession(host: "127.0.0.1", port: relay.port,
                                  settings: .testing(tls: .may, notice: { notices.add($0) }))
        try session.open()
        XCTAssertNil(session.tlsDescription)
        let fallback = try XCTUnwrap(session.plaintextFallback)
        XCTAssertTrue(fallback.contains("TLS handshake with 127.0.0.1 failed"), fallback)
        XCTAssertEqual(notices.all.count, 1)
        XCTAssertTrue(notices.all.first?.contains("trying again in plain text (TLS=may)") == true, notices.all.first ?? "")
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertEqual(relay.connectionCount(), 2, "one failed STARTTLS, one plain connection")
    }
#endif

#if TLS
    func testRequireNeverFallsBackToPlainText() throws {
        let relay = try TLSRecorder(in: directory, ["--broken-starttls"])
        let notices = NoticeLog()
        let session = SMTPSession(host: "127.0.0.1", port: relay.port,
                                  settings: .testing(tls: .require, ca: certs.ca, notice: { notices.add($0) }))
        let text = expectTLSFailure(session)
        XCTAssertTrue(text.contains("TLS handshake with 127.0.0.1 failed"), text)
        XCTAssertTrue(notices.all.isEmpty)
        XCTAssertEqual(relay.connectionCount(), 1)
        XCTAssertTrue(relay.events("mail").isEmpty)
    }
#endif

#if TLS
    func testAMessageOfSeveralMegabytesCrossesTLSWhole() throws {
        let relay = try starttlsRelay(certs.server)
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        try session.open()
        var text = "Subject: big\r\n\r\n"
        for i in 0..<60_000 { text += "line \(i) of a long posting, long enough to fill many TLS records\r\n" }
        let envelope = Envelope(sender: "owner@lists.example.org", recipients: [EnvelopeRecipient(address: "a@example.net")])
        XCTAssertEqual(session.send(envelope, message: TestMessage(text)).map(\.kind), [.delivered])
        _ = session.close()
        let record = try XCTUnwrap(relay.records().first)
        let data = Data(base64Encoded: record["data_b64"] as? String ?? "") ?? Data()
        XCTAssertEqual(data, Data(text.utf8))
    }
#endif

#if TLS
    func testAnIdleTLSConnectionIsProbedAndReused() throws {
        let relay = try starttlsRelay(certs.server)
        var settings = SessionSettings.testing(tls: .require, ca: certs.ca)
        settings.idleProbeAfter = .milliseconds(100)
        let session = SMTPSession(host: "localhost", port: relay.port, settings: settings)
        try session.open()
        usleep(200_000)
        XCTAssertTrue(session.checkAlive())  // RSET and its reply, over TLS
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        usleep(200_000)
        XCTAssertTrue(session.checkAlive())
        XCTAssertEqual(deliverOne(session, tag: "again").map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertEqual(relay.connectionCount(), 1)
        XCTAssertEqual(try relay.records().compactMap { $0["tls"] as? String }.count, 2)
    }
#endif

#if TLS
    func testARelayThatClosedAnIdleTLSConnectionIsNoticed() throws {
        let relay = try starttlsRelay(certs.server, ["--idle-timeout", "0.5"])
        let session = SMTPSession(host: "localhost", port: relay.port, settings: .testing(tls: .require, ca: certs.ca))
        try session.open()
        usleep(1_500_000)
        XCTAssertFalse(session.checkAlive())
        XCTAssertFalse(session.isOpen)
    }
#endif

#if !TLS
    func testABuildWithoutTLSSaysSoWhenTLSIsRequired() throws {
        let relay = try TLSRecorder(in: directory, [])
        for policy in [TLSPolicy.require, .smtps] {
            let session = SMTPSession(host: "127.0.0.1", port: relay.port, settings: .testing(tls: policy))
            let text = expectTLSFailure(session)
            XCTAssertTrue(text.contains("built without TLS") && text.contains("TLS=\(policy.rawValue)"), text)
        }
        XCTAssertEqual(relay.connectionCount(), 0)
    }
#endif
}
