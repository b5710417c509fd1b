// SMTP AUTH: the exchange as a table of dialogues without a network, then against aiosmtpd
// over STARTTLS — PLAIN and LOGIN with the right secret, a clean failure with a wrong one,
// and a password that never goes out in plain text and never shows in an error.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import SMTPClient

final class TLSAuthenticationExchangeTests: XCTestCase {
    func testBase64MatchesRFC4648() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                       ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded, plain)
        }
        XCTAssertEqual(Base64.encode([0xFF, 0xFE, 0x00]), "//4A")
    }

    func testTheMechanismIsPLAINWhenOfferedThenLOGIN() {
        let table: [([String], AuthenticationExchange.Mechanism?)] = [
            (["PLAIN", "LOGIN"], .plain),
            (["LOGIN", "PLAIN"], .plain),
            (["login", "cram-md5"], .login),
            (["CRAM-MD5", "XOAUTH2"], nil),
            ([], nil),
        ]
        for (offered, expected) in table {
            XCTAssertEqual(AuthenticationExchange.Mechanism.preferred(from: offered), expected, "\(offered)")
        }
    }

    /// A dialogue: the relay's replies in order, and what the exchange must do after each.
    struct Dialogue {
        var mechanism: AuthenticationExchange.Mechanism
        var firstLine: String
        var steps: [(SMTPReply, AuthenticationExchange.Step)]
    }

    func testDialogues() {
        let plainLine = "AUTH PLAIN AGxpc3RzAHMzY3JldA=="  // \0lists\0s3cret
        let table: [(String, Dialogue)] = [
            ("PLAIN accepted", Dialogue(mechanism: .plain, firstLine: plainLine, steps: [
                (SMTPReply(235, "2.7.0 Authentication successful"), .succeeded)])),
            ("PLAIN refused", Dialogue(mechanism: .plain, firstLine: plainLine, steps: [
                (SMTPReply(535, "5.7.8 Authentication credentials invalid"), .failed(SMTPReply(535, "5.7.8 Authentication credentials invalid")))])),
            ("PLAIN, try later", Dialogue(mechanism: .plain, firstLine: plainLine, steps: [
                (SMTPReply(454, "4.7.0 Temporary authentication failure"), .failed(SMTPReply(454, "4.7.0 Temporary authentication failure")))])),
            ("PLAIN, a prompt it cannot answer is cancelled", Dialogue(mechanism: .plain, firstLine: plainLine, steps: [
                (SMTPReply(334, ""), .send("*")),
                (SMTPReply(501, "5.7.0 Auth aborted"), .failed(SMTPReply(501, "5.7.0 Auth aborted")))])),
            ("LOGIN accepted", Dialogue(mechanism: .login, firstLine: "AUTH LOGIN", steps: [
                (SMTPReply(334, "VXNlcm5hbWU6"), .send("bGlzdHM=")),
                (SMTPReply(334, "UGFzc3dvcmQ6"), .send("czNjcmV0")),
                (SMTPReply(235, "2.7.0 OK"), .succeeded)])),
            ("LOGIN refused after the password", Dialogue(mechanism: .login, firstLine: "AUTH LOGIN", steps: [
                (SMTPReply(334, "VXNlcm5hbWU6"), .send("bGlzdHM=")),
                (SMTPReply(334, "UGFzc3dvcmQ6"), .send("czNjcmV0")),
                (SMTPReply(535, "5.7.8 no"), .failed(SMTPReply(535, "5.7.8 no")))])),
            ("LOGIN, a third prompt is cancelled", Dialogue(mechanism: .login, firstLine: "AUTH LOGIN", steps: [
                (SMTPReply(334, "VXNlcm5hbWU6"), .send("bGlzdHM=")),
                (SMTPReply(334, "UGFzc3dvcmQ6"), .send("czNjcmV0")),
                (SMTPReply(334, "TW9yZT8="), .send("*")),
                (SMTPReply(501, "5.7.0 aborted"), .failed(SMTPReply(501, "5.7.0 aborted")))])),
            ("LOGIN not offered after all", Dialogue(mechanism: .login, firstLine: "AUTH LOGIN", steps: [
                (SMTPReply(504, "5.5.4 Unrecognized authentication type"), .failed(SMTPReply(504, "5.5.4 Unrecognized authentication type")))])),
        ]
        for (name, dialogue) in table {
            var exchange = AuthenticationExchange(mechanism: dialogue.mechanism, user: "lists", password: "s3cret")
            XCTAssertEqual(exchange.firstLine(), dialogue.firstLine, name)
            for (i, (reply, expected)) in dialogue.steps.enumerated() {
                XCTAssertEqual(exchange.receive(reply), expected, "\(name), reply \(i + 1)")
            }
        }
    }

    func testCredentialsAndTheExchangeNeverPrintThePassword() {
        let credentials = SMTPCredentials(user: "lists", password: "s3cret-Pa55")
        let settings = SessionSettings(heloName: "h", credentials: credentials)
        let exchange = AuthenticationExchange(mechanism: .plain, user: "lists", password: "s3cret-Pa55")
        var dumped = ""
        dump(settings, to: &dumped)
        dump(exchange, to: &dumped)
        for text in ["\(credentials)", String(reflecting: credentials), "\(settings)", String(reflecting: settings),
                     "\(exchange)", String(reflecting: exchange), dumped] {
            XCTAssertFalse(text.contains("s3cret-Pa55"), text)
            XCTAssertFalse(text.contains(Base64.encode(Array("s3cret-Pa55".utf8))), text)
        }
        XCTAssertTrue("\(credentials)".contains("lists"))
    }
}

final class TLSAuthenticationTests: XCTestCase {
    var directory = ""
    var certs: TestCertificates!
    let password = "correct horse battery staple"

    override func setUpWithError() throws {
        directory = try TLSTestTools.temporaryDirectory("auth")
        certs = try TestCertificates(in: directory)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func relay(_ extra: [String] = [], label: String = "relay") throws -> TLSRecorder {
        try TLSRecorder(in: directory, ["--starttls", certs.server.0, certs.server.1, "--auth", "lists:\(password)"] + extra, label: label)
    }

    private func session(_ relay: TLSRecorder, password: String, tls: TLSPolicy = .require, insecure: Bool = false) -> SMTPSession {
        SMTPSession(host: "localhost", port: relay.port,
                    settings: .testing(tls: tls, ca: certs.ca,
                                       credentials: SMTPCredentials(user: "lists", password: password, allowUnencrypted: insecure)))
    }

    /// Opens and expects an AUTH failure; returns its description (checked for the password).
    private func expectAuthenticationFailure(_ session: SMTPSession, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try session.open()
            XCTFail("open() succeeded as \(session.authenticatedUser ?? "nobody")", file: file, line: line)
            return ""
        } catch {
            guard case .authentication = error.kind else {
                XCTFail("not an AUTH failure: \(error)", file: file, line: line)
                return "\(error)"
            }
            XCTAssertFalse(session.isOpen, file: file, line: line)
            let text = error.description
            XCTAssertFalse(text.contains(password), text, file: file, line: line)
            XCTAssertFalse(text.contains("wrong password"), text, file: file, line: line)
            return text
        }
    }

#if TLS
    func testAUTHPLAINWithTheRightSecretDelivers() throws {
        let relay = try relay()
        let session = session(relay, password: password)
        try session.open()
        XCTAssertEqual(session.authenticatedUser, "lists")
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertEqual(try relay.records().first?["auth_user"] as? String, "lists")
        XCTAssertEqual(relay.events("auth").map { $0["mechanism"] as? String }, ["PLAIN"])
    }
#endif

#if TLS
    func testAUTHLOGINWhenTheRelayOffersNoPLAIN() throws {
        let relay = try relay(["--auth-exclude", "PLAIN"])
        let session = session(relay, password: password)
        try session.open()
        XCTAssertEqual(session.authenticatedUser, "lists")
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertEqual(try relay.records().first?["auth_user"] as? String, "lists")
        XCTAssertEqual(relay.events("auth").map { $0["mechanism"] as? String }, ["LOGIN"])
    }
#endif

#if TLS
    func testAWrongPasswordFailsCleanlyNamingUserAndHost() throws {
        for (n, exclude) in [[], ["--auth-exclude", "PLAIN"]].enumerated() {
            let relay = try relay(exclude, label: "relay\(n)")
            let session = session(relay, password: "wrong password")
            let text = expectAuthenticationFailure(session)
            XCTAssertTrue(text.contains("authentication failed for user lists at localhost: 535"), text)
            XCTAssertEqual(deliverOne(session).map(\.kind), [.deferred])
            XCTAssertTrue(relay.events("mail").isEmpty)
            relay.stop()
        }
    }
#endif

    func testThePasswordNeverGoesOutWithoutTLS() throws {
        // A relay that offers AUTH in plain text and no STARTTLS.
        let relay = try TLSRecorder(in: directory, ["--auth", "lists:\(password)", "--auth-insecure"])
        let session = SMTPSession(host: "127.0.0.1", port: relay.port,
                                  settings: .testing(tls: .may, credentials: SMTPCredentials(user: "lists", password: password)))
        let text = expectAuthenticationFailure(session)
        XCTAssertTrue(text.contains("will not send the password of lists to 127.0.0.1 without TLS"), text)
        XCTAssertTrue(relay.events("auth").isEmpty)
    }

    func testAUTHINSECUREAllowsAUTHInPlainText() throws {
        let relay = try TLSRecorder(in: directory, ["--auth", "lists:\(password)", "--auth-insecure"])
        let session = SMTPSession(host: "127.0.0.1", port: relay.port,
                                  settings: .testing(tls: .none, credentials: SMTPCredentials(user: "lists", password: password, allowUnencrypted: true)))
        try session.open()
        XCTAssertEqual(session.authenticatedUser, "lists")
        XCTAssertNil(session.tlsDescription)
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
        XCTAssertEqual(try relay.records().first?["auth_user"] as? String, "lists")
    }

#if TLS
    func testARelayThatOffersNoAUTHIsAnErrorNotAnAnonymousDelivery() throws {
        let relay = try TLSRecorder(in: directory, ["--starttls", certs.server.0, certs.server.1])
        let text = expectAuthenticationFailure(session(relay, password: password))
        XCTAssertTrue(text.contains("localhost does not offer AUTH"), text)
        XCTAssertTrue(relay.events("mail").isEmpty)
    }
#endif

#if TLS
    func testAUTHOverSMTPS() throws {
        let relay = try TLSRecorder(in: directory, ["--smtps", certs.server.0, certs.server.1, "--auth", "lists:\(password)"])
        let session = SMTPSession(host: "localhost", port: relay.port,
                                  settings: .testing(tls: .smtps, ca: certs.ca, credentials: SMTPCredentials(user: "lists", password: password)))
        try session.open()
        XCTAssertEqual(session.authenticatedUser, "lists")
        XCTAssertEqual(deliverOne(session).map(\.kind), [.delivered])
        _ = session.close()
    }
#endif
}
