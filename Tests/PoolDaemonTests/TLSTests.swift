// TLS and AUTH through the whole daemon: worker lines with TLS=, TLS_CA=, AUTH=, SECRET=
// against aiosmtpd (scripts/relays/recorder.py) with certificates made for each test by
// scripts/relays/make_test_ca.sh. A relay that fails verification or authentication gets
// nothing and the mail is deferred; the password never reaches poold's stderr.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SMTPClient
import SpoolKit

final class TLSTests: XCTestCase {
    let password = "Tr0ub4dor&3-poold-test"

    /// Certificates from make_test_ca.sh in `directory`/certs.
    struct Certificates {
        let directory: String
        var ca: String { directory + "/ca.pem" }
        func pair(_ stem: String) -> [String] { [directory + "/\(stem).pem", directory + "/\(stem).key"] }

        init(in parent: String) throws {
            directory = parent + "/certs"
            let log = parent + "/make_test_ca.log"
            let child = try ChildProcess("make_test_ca", executable: "/bin/bash",
                                         arguments: [try TestTools.scripts + "/relays/make_test_ca.sh", directory], logTo: log)
            guard child.waitForExit(timeout: 60) == 0, FileManager.default.fileExists(atPath: directory + "/ca.pem") else {
                throw MissingTool(description: "make_test_ca.sh failed: \(child.output)")
            }
        }
    }

    /// Short deadlines: a mistake shows as a failure, not a stalled suite.
    let quick = ["SMTP_CONNECT_TIMEOUT=10s", "SMTP_GREETING_TIMEOUT=10s", "SMTP_COMMAND_TIMEOUT=10s"]

    func job(_ tag: String) -> [UInt8] {
        JobWriter.bsmtp(message: Array("Subject: \(tag)\r\nX-Test-Id: \(tag)\r\n\r\nhello\r\n".utf8),
                        from: "owner@lists.example.org", to: ["a@example.com", "b@example.net"])
    }

    /// The relay's records as JSON objects (for the "tls" and "auth_user" fields).
    func rawRecords(_ relay: RecordingRelay) throws -> [[String: Any]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: relay.out).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return try names.map {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: relay.out + "/" + $0))) as? [String: Any] ?? [:]
        }
    }

    func mailCommands(_ relay: RecordingRelay) -> Int {
        (relay.file("events.jsonl") ?? "").split(separator: "\n").filter { $0.contains("\"event\": \"mail\"") }.count
    }

    /// A SECRET file holding `password` with `mode`.
    func secretFile(in fixture: SpoolFixture, _ password: String, mode: mode_t = 0o600) throws -> String {
        let path = fixture.directory + "/relay.secret"
        try (password + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode)
        return path
    }


    /// Runs `body` with this process's stderr (where `Log` writes) going to a file; returns what was written.
    func capturingStandardError(in directory: String, _ body: () throws -> Void) rethrows -> String {
        let path = directory + "/stderr.log"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let saved = dup(2)
        dup2(fd, 2)
        close(fd)
        defer {
            dup2(saved, 2)
            close(saved)
        }
        try body()
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    // MARK: - TLS

#if TLS
    func testAJobGoesOverVerifiedSTARTTLS() throws {
        let fixture = try SpoolFixture("tls-require")
        let certs = try Certificates(in: fixture.directory)
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--starttls"] + certs.pair("server") + ["--require-starttls", "--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=require;TLS_CA=\(certs.ca)"] + quick)
        try fixture.drop("A1.MAIL", job("verified"))
        let daemon = try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let shown = daemon.board.all.first?.tls ?? "none"
        XCTAssertTrue(shown.hasPrefix("TLSv1.") && shown.hasSuffix("(verified)"), "status shows \(shown)")
        let records = try rawRecords(relay)
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records.first?["rcpt_tos"] as? [String], ["a@example.com", "b@example.net"])
        XCTAssertTrue((records.first?["tls"] as? String)?.hasPrefix("TLSv1.") == true, "\(records.first?["tls"] ?? "none")")
    }
#endif

#if TLS
    func testACertificateFromAnotherCAIsRefusedAndTheMailDeferred() throws {
        let fixture = try SpoolFixture("tls-otherca")
        let certs = try Certificates(in: fixture.directory)
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--starttls"] + certs.pair("stranger"))
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=require;TLS_CA=\(certs.ca)"] + quick)
        try fixture.drop("A1.MAIL", job("otherca"))
        let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(mailCommands(relay), 0, "nothing was sent, not even MAIL FROM")
        XCTAssertTrue(try relay.records().isEmpty)
        XCTAssertTrue(log.contains("TLS handshake with localhost failed: certificate verification failed: unable to get local issuer certificate"), log)
    }
#endif

#if TLS
    func testACertificateForAnotherNameIsRefusedAndTheMailDeferred() throws {
        let fixture = try SpoolFixture("tls-name")
        let certs = try Certificates(in: fixture.directory)
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--starttls"] + certs.pair("wrong-name"))
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=require;TLS_CA=\(certs.ca)"] + quick)
        try fixture.drop("A1.MAIL", job("name"))
        let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(mailCommands(relay), 0)
        XCTAssertTrue(log.contains("certificate verification failed: hostname mismatch"), log)
    }
#endif

#if TLS
    func testRequireAgainstARelayWithoutSTARTTLSDefersAndSendsNothing() throws {
        let fixture = try SpoolFixture("tls-absent")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port);TLS=require"] + quick)
        try fixture.drop("A1.MAIL", job("absent"))
        let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(mailCommands(relay), 0)
        XCTAssertTrue(log.contains("does not offer STARTTLS"), log)
    }
#endif

#if TLS
    func testSMTPSDeliversOverVerifiedTLS() throws {
        let fixture = try SpoolFixture("tls-smtps")
        let certs = try Certificates(in: fixture.directory)
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--smtps"] + certs.pair("server"))
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=smtps;TLS_CA=\(certs.ca)"] + quick)
        try fixture.drop("A1.MAIL", job("smtps"))
        try fixture.drop("A2.MAIL", job("smtps2"))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let records = try rawRecords(relay)
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(records.compactMap { $0["tls"] as? String }.count, 2)
    }
#endif

    func testMayAgainstARelayWithoutSTARTTLSSendsPlainText() throws {
        let fixture = try SpoolFixture("tls-may")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port);TLS=may"] + quick)
        try fixture.drop("A1.MAIL", job("may"))
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        let records = try rawRecords(relay)
        XCTAssertEqual(records.count, 1)
        XCTAssertTrue(records.first?["tls"] is NSNull)
    }

#if TLS
    func testMayFallsBackToPlainTextAndSaysSo() throws {
        let fixture = try SpoolFixture("tls-fallback")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--broken-starttls"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"] + quick)  // TLS=may is the default
        try fixture.drop("A1.MAIL", job("fallback"))
        let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(try relay.records().count, 1)
        XCTAssertTrue(log.contains("SMTP_FORWARD_1: 127.0.0.1:\(relay.port): TLS handshake with 127.0.0.1 failed"), log)
        XCTAssertTrue(log.contains("trying again in plain text (TLS=may)"), log)
    }
#endif

    // MARK: - AUTH

#if TLS
    func testAUTHPLAINAndLOGINDeliverWithTheRightSecretAndThePasswordIsNeverLogged() throws {
        for mechanism in ["PLAIN", "LOGIN"] {
            let fixture = try SpoolFixture("auth-\(mechanism)")
            let certs = try Certificates(in: fixture.directory)
            let exclude = mechanism == "PLAIN" ? "LOGIN" : "PLAIN"
            let relay = try RecordingRelay(in: fixture.directory, arguments: ["--starttls"] + certs.pair("server")
                                           + ["--auth", "lists:\(password)", "--auth-exclude", exclude])
            defer { relay.stop() }
            let secret = try secretFile(in: fixture, password)
            try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=require;TLS_CA=\(certs.ca);AUTH=lists;SECRET=\(secret)"] + quick)
            try checkRelaySecurity(fixture.configuration())
            try fixture.drop("A1.MAIL", job("auth"))
            let verbose = Log.verbose
            Log.verbose = true
            defer { Log.verbose = verbose }
            let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
            XCTAssertEqual(fixture.jobsLeft(), [], mechanism)
            XCTAssertEqual(fixture.deferredJobs(), [], mechanism)
            let records = try rawRecords(relay)
            XCTAssertEqual(records.first?["auth_user"] as? String, "lists", mechanism)
            XCTAssertTrue(relay.file("events.jsonl")?.contains("\"mechanism\": \"\(mechanism)\"") == true, mechanism)
            XCTAssertFalse(log.contains(password), log)
            XCTAssertFalse(log.contains(Base64.encode(Array(password.utf8))), log)
        }
    }
#endif

#if TLS
    func testAWrongPasswordDefersTheMailAndSaysWhoFailedWhere() throws {
        let fixture = try SpoolFixture("auth-wrong")
        let certs = try Certificates(in: fixture.directory)
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--starttls"] + certs.pair("server") + ["--auth", "lists:\(password)"])
        defer { relay.stop() }
        let wrong = "not-the-password-\(password)"
        let secret = try secretFile(in: fixture, wrong)
        try fixture.configure(["SMTP_FORWARD_1=localhost:\(relay.port);TLS=require;TLS_CA=\(certs.ca);AUTH=lists;SECRET=\(secret)"] + quick)
        try fixture.drop("A1.MAIL", job("wrong"))
        let verbose = Log.verbose
        Log.verbose = true
        defer { Log.verbose = verbose }
        let log = try capturingStandardError(in: fixture.directory) { try fixture.drain() }
        XCTAssertEqual(fixture.deferredJobs(), ["A1.MAIL"])
        XCTAssertEqual(mailCommands(relay), 0)
        XCTAssertTrue(log.contains("authentication failed for user lists at localhost: 535"), log)
        XCTAssertFalse(log.contains(wrong), log)
        XCTAssertFalse(log.contains(Base64.encode(Array(wrong.utf8))), log)
        // Nor in any file the daemon left in the spool (journals, status).
        let files = FileManager.default.enumerator(atPath: fixture.spoolDirectory)?.compactMap { $0 as? String } ?? []
        XCTAssertFalse(files.isEmpty)
        for name in files {
            guard let text = try? String(contentsOfFile: fixture.spoolDirectory + "/" + name, encoding: .utf8) else { continue }
            XCTAssertFalse(text.contains(wrong), name)
        }
    }
#endif

    // MARK: - the checks at start

    func testASecretFileReadableByOthersIsRefusedNamingIt() throws {
        let fixture = try SpoolFixture("auth-mode")
        let secret = try secretFile(in: fixture, password, mode: 0o644)
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org;TLS=none;AUTH=lists;SECRET=\(secret);AUTH_INSECURE=1"])
        let config = try fixture.configuration()
        for check in [checkSecrets, checkRelaySecurity] {
            XCTAssertThrowsError(try check(config)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(secret) && text.contains("mode 644") && text.contains("line 2 (SMTP_FORWARD_1)"), text)
                XCTAssertTrue(text.hasPrefix(fixture.configPath), text)
                XCTAssertFalse(text.contains(self.password), text)
            }
        }
        XCTAssertThrowsError(try sessionSettings(for: config.workerLines[0], base: SessionSettings(heloName: "h")))
        chmod(secret, 0o600)
        XCTAssertNoThrow(try checkSecrets(config))
        chmod(secret, 0o640)
        XCTAssertThrowsError(try checkSecrets(config))
    }

    func testPooldRefusesToStartWithAnUnsafeSecretFile() throws {
        let fixture = try SpoolFixture("auth-start")
        let secret = try secretFile(in: fixture, password, mode: 0o604)
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org;TLS=none;AUTH=lists;SECRET=\(secret);AUTH_INSECURE=1"])
        try fixture.drop("A1.MAIL", job("never"))
        XCTAssertThrowsError(try fixture.drain()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("SECRET file \(secret) can be read by group or others (mode 604)"), text)
            XCTAssertFalse(text.contains(self.password), text)
        }
        XCTAssertEqual(fixture.jobsLeft(), ["A1.MAIL"], "nothing was touched")
    }

    func testAMissingOrEmptySecretFileIsRefused() throws {
        let fixture = try SpoolFixture("auth-missing")
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org;AUTH=lists;SECRET=\(fixture.directory)/nowhere"])
        XCTAssertThrowsError(try checkSecrets(fixture.configuration())) { error in
            XCTAssertTrue("\(error)".contains("\(fixture.directory)/nowhere cannot be read"), "\(error)")
        }
        let empty = try secretFile(in: fixture, "")
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org;AUTH=lists;SECRET=\(empty)"])
        XCTAssertThrowsError(try checkSecrets(fixture.configuration())) { error in
            XCTAssertTrue("\(error)".contains("is empty"), "\(error)")
        }
    }

#if TLS
    func testAnUnreadableTLSCAIsRefusedNamingTheLine() throws {
        let fixture = try SpoolFixture("tls-ca")
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org", "SMTP_FORWARD_2=relay.example.org;TLS=require;TLS_CA=\(fixture.directory)/no-ca.pem"])
        XCTAssertThrowsError(try checkRelaySecurity(fixture.configuration())) { error in
            XCTAssertTrue("\(error)".contains("line 3 (SMTP_FORWARD_2): TLS_CA \(fixture.directory)/no-ca.pem cannot be read"), "\(error)")
        }
    }
#endif

    func testAWorkerLinesOptionsBecomeItsSessionSettings() throws {
        let fixture = try SpoolFixture("tls-settings")
        let secret = try secretFile(in: fixture, password)
        try fixture.configure([
            "SMTP_FORWARD_1=relay.example.org",
            "SMTP_FORWARD_2=relay.example.org:587;TLS=require;TLS_CA=/etc/ca.pem;AUTH=lists;SECRET=\(secret)",
            "SMTP_FORWARD_3=relay.example.org;TLS=smtps",
            "SMTP_FORWARD_4=relay.example.org;TLS=none;AUTH=lists;SECRET=\(secret);AUTH_INSECURE=1",
            "SMTP_FORWARD_5=relay.example.org;TLS=may;TLS_CA=/etc/ca.pem",
        ])
        let lines = try fixture.configuration().workerLines.sorted { $0.number < $1.number }
        var base = SessionSettings(heloName: "lists.example.org")
        base.timeouts.command = .seconds(7)
        let settings = try lines.map { try sessionSettings(for: $0, base: base) }
        XCTAssertEqual(settings.map(\.tls), [.may, .require, .smtps, .none, .may])
        XCTAssertEqual(settings.map(\.tlsCAFile), [nil, "/etc/ca.pem", nil, nil, nil])
        XCTAssertEqual(settings.map { $0.credentials?.user }, [nil, "lists", nil, "lists", nil])
        XCTAssertEqual(settings.map { $0.credentials?.allowUnencrypted }, [nil, false, nil, true, nil])
        XCTAssertEqual(settings.map(\.timeouts.command), Array(repeating: .seconds(7), count: 5))
        XCTAssertEqual(settings.map(\.heloName), Array(repeating: "lists.example.org", count: 5))
        XCTAssertTrue(settings.allSatisfy { $0.notice != nil })
    }

#if !TLS
    func testABuildWithoutTLSRefusesLinesThatNeedIt() throws {
        let fixture = try SpoolFixture("notls")
        try fixture.configure(["SMTP_FORWARD_1=relay.example.org", "SMTP_FORWARD_2=relay.example.org;TLS=require"])
        XCTAssertThrowsError(try checkRelaySecurity(fixture.configuration())) { error in
            XCTAssertTrue("\(error)".contains("line 3 (SMTP_FORWARD_2): TLS=require, but poold was built without TLS"), "\(error)")
        }
    }
#endif
}
