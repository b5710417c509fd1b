// What the TLS session tests run against: throw-away certificates made by
// scripts/relays/make_test_ca.sh at test time, and aiosmtpd (scripts/relays/recorder.py)
// with its TLS and AUTH options, as a child process stopped by its PID when done.
// (PoolDaemonTests has its own relay helpers; this target cannot import them.)

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SMTPClient

struct TLSTestSetupError: Error, CustomStringConvertible {
    var description: String
}

enum TLSTestTools {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
    static func require(_ name: String, fallback: String) throws -> String {
        if let v = ProcessInfo.processInfo.environment[name], !v.isEmpty { return v }
        if FileManager.default.fileExists(atPath: fallback) { return fallback }
        throw TLSTestSetupError(description: "\(name) is not set and \(fallback) does not exist: run scripts/install-test-deps and source .tools/env")
    }
    static var python: String { get throws { try require("POOLD_PYTHON", fallback: repository + "/.venv/bin/python") } }
    static var scripts: String { get throws { try require("POOLD_SCRIPTS", fallback: repository + "/scripts") } }

    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "poold-tls-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs a program to its end (bounded by `timeout`), its output to `log`; returns its exit status.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], log: String, timeout: Double = 60) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TLSTestSetupError(description: "\(executable) did not finish within \(timeout) s")
        }
        return process.terminationStatus
    }
}

/// The certificates of scripts/relays/make_test_ca.sh, made fresh in a temporary directory.
struct TestCertificates {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var otherCA: String { directory + "/other-ca.pem" }
    /// (certificate, key) signed by `ca` for localhost, 127.0.0.1 and ::1.
    var server: (String, String) { (directory + "/server.pem", directory + "/server.key") }
    /// Signed by `ca`, for wrong.example.org only.
    var wrongName: (String, String) { (directory + "/wrong-name.pem", directory + "/wrong-name.key") }
    /// For localhost, but signed by `otherCA`.
    var stranger: (String, String) { (directory + "/stranger.pem", directory + "/stranger.key") }

    init(in directory: String) throws {
        self.directory = directory + "/certs"
        let log = directory + "/make_test_ca.log"
        let status = try TLSTestTools.run("/bin/bash", [try TLSTestTools.scripts + "/relays/make_test_ca.sh", self.directory], log: log)
        guard status == 0, FileManager.default.fileExists(atPath: ca) else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TLSTestSetupError(description: "make_test_ca.sh failed with status \(status): \(output)")
        }
    }
}

/// recorder.py on a free loopback port, with the given options.
final class TLSRecorder {
    let port: UInt16
    let out: String
    let log: String
    private let process = Process()

    init(in directory: String, _ arguments: [String], label: String = "relay") throws {
        out = directory + "/\(label)-records"
        log = directory + "/\(label).log"
        let ready = directory + "/\(label).port"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        process.executableURL = URL(fileURLWithPath: try TLSTestTools.python)
        process.arguments = [try TLSTestTools.scripts + "/relays/recorder.py", "--host", "127.0.0.1", "--port", "0",
                             "--out", out, "--ready-file", ready, "--lifetime", "300"] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        var found: UInt16?
        while Date() < deadline {
            if let text = try? String(contentsOfFile: ready, encoding: .utf8),
               let p = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)) { found = p; break }
            if !process.isRunning { break }
            usleep(50_000)
        }
        guard let found else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw TLSTestSetupError(description: "recorder.py did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        port = found
    }

    /// Accepted transactions, in arrival order, as JSON objects.
    func records() throws -> [[String: Any]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return try names.map {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/" + $0))) as? [String: Any] ?? [:]
        }
    }

    /// The lines of events.jsonl whose "event" is `kind`.
    func events(_ kind: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: out + "/events.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["event"] as? String == kind }
    }

    /// TCP connections the relay accepted (aiosmtpd logs "connect" again after STARTTLS,
    /// so these are told apart by the client's port).
    func connectionCount() -> Int {
        Set(events("connect").compactMap { ($0["peer"] as? [Any])?.last as? Int }).count
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A one-recipient message for a session test.
struct TestMessage: MessageSource {
    let bytes: [UInt8]
    init(_ text: String) { bytes = Array(text.utf8) }
    var wireSize: Int64 { Int64(bytes.count) }
    func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { try sink($0) }
    }
}

extension SessionSettings {
    /// Test settings: short deadlines, so a failure never hangs the suite.
    static func testing(tls: TLSPolicy, ca: String? = nil, credentials: SMTPCredentials? = nil,
                        notice: (@Sendable (String) -> Void)? = nil) -> SessionSettings {
        var timeouts = SMTPTimeouts()
        timeouts.connect = .seconds(10)
        timeouts.greeting = .seconds(20)
        timeouts.command = .seconds(20)
        timeouts.dataInit = .seconds(20)
        timeouts.dataBlock = .seconds(20)
        timeouts.dataDone = .seconds(20)
        timeouts.tlsHandshake = .seconds(20)
        return SessionSettings(heloName: "client.poold.test", timeouts: timeouts, tls: tls, tlsCAFile: ca,
                               credentials: credentials, notice: notice)
    }
}

/// Sends one message to `to` and returns the outcome's kind.
func deliverOne(_ session: SMTPSession, to: String = "list-member@example.net", tag: String = "tls") -> [RecipientOutcome] {
    let envelope = Envelope(sender: "owner-list@lists.example.org", recipients: [EnvelopeRecipient(address: to)])
    return session.send(envelope, message: TestMessage("Subject: \(tag)\r\nX-Test-Id: \(tag)\r\n\r\nHello over \(tag).\r\n"))
}

/// Collects notices from a session (which calls them from its own thread).
final class NoticeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
