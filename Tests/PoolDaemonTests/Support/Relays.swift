// Real relays for the integration tests, each a child process on a free loopback port,
// bounded in time (--lifetime, or `timeout`) and stopped by its PID when the test ends.
// Installed by scripts/test (smtp-sink from Debian's postfix, aiosmtpd in a venv); a
// missing one is a failure that says how to get it, never a skip.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

struct MissingTool: Error, CustomStringConvertible {
    var description: String
}

enum TestTools {
    static let environment = ProcessInfo.processInfo.environment
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }
    static func require(_ name: String, fallback: String) throws -> String {
        if let v = environment[name], !v.isEmpty { return v }
        if FileManager.default.fileExists(atPath: fallback) { return fallback }
        throw MissingTool(description: "\(name) is not set and \(fallback) does not exist: run the suite with scripts/test, which installs the test relays")
    }
    static var python: String { get throws { try require("POOLD_PYTHON", fallback: repository + "/.venv/bin/python") } }
    static var scripts: String { get throws { try require("POOLD_SCRIPTS", fallback: repository + "/scripts") } }
    static var smtpSink: String { get throws { try require("POOLD_SMTP_SINK", fallback: "/usr/sbin/smtp-sink") } }
    static var binDirectory: String { get throws { try require("POOLD_BIN_DIR", fallback: repository + "/.build/debug") } }
}

/// A port nobody listens on right now.
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return UInt16(bigEndian: address.sin_port)
}

func makeTemporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "poold-test-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A child process stopped (SIGTERM, then SIGKILL) when the test is done with it.
final class ChildProcess {
    let process = Process()
    let name: String
    let log: String

    init(_ name: String, executable: String, arguments: [String], logTo log: String, environment: [String: String]? = nil) throws {
        self.name = name
        self.log = log
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits for the process to exit by itself; nil when it is still running at the deadline.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        if waitForExit(timeout: 5) == nil { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    deinit { stop() }
}

/// Waits until a TCP port accepts connections.
func waitForPort(_ port: UInt16, timeout: Double = 15) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if rc == 0 { return }
        usleep(50_000)
    }
    throw MissingTool(description: "nothing listens on port \(port) after \(timeout) s")
}

/// Postfix's smtp-sink, dumping each message with its envelope into `dumps`.
final class SmtpSink {
    let port: UInt16
    let dumps: String
    let child: ChildProcess

    init(in directory: String, pipelining: Bool = true, extraArguments: [String] = []) throws {
        port = freePort()
        dumps = directory + "/sink-dumps"
        try FileManager.default.createDirectory(atPath: dumps, withIntermediateDirectories: true)
        var arguments = ["-u", "root", "-c", "-d", dumps + "/%M."] + extraArguments
        if !pipelining { arguments.insert("-p", at: 0) }  // -p: no PIPELINING (-P would fake a PIX firewall)
        arguments += ["127.0.0.1:\(port)", "256"]
        child = try ChildProcess("smtp-sink", executable: "/usr/bin/timeout", arguments: ["600", try TestTools.smtpSink] + arguments, logTo: directory + "/sink.log")
        try waitForPort(port)
    }

    struct Message {
        var sender: String
        var recipients: [String]
        /// The message after smtp-sink's own header lines (X-Client-Addr … Received).
        var body: [UInt8]
    }

    func messages() throws -> [Message] {
        var result: [Message] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dumps) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dumps + "/" + name)))
            var message = Message(sender: "", recipients: [], body: [])
            var i = 0
            var inReceived = false
            while i < bytes.count {
                let end = bytes[i...].firstIndex(of: 10) ?? bytes.count
                let line = String(decoding: bytes[i..<end], as: UTF8.self)
                if inReceived && !(line.hasPrefix("\t") || line.hasPrefix(" ")) { break }
                if line.hasPrefix("X-Rcpt-Args: <") { message.recipients.append(String(line.dropFirst(14).prefix { $0 != ">" })) }
                if line.hasPrefix("X-Mail-Args: <") { message.sender = String(line.dropFirst(14).prefix { $0 != ">" }) }
                if line.hasPrefix("Received:") { inReceived = true }
                i = end + 1
            }
            // smtp-sink writes LF line ends and one extra LF after the message: undo both.
            var body = i < bytes.count ? Array(bytes[i...]) : []
            if body.last == 10 { body.removeLast() }
            message.body = body.flatMap { $0 == 10 ? [13, 10] : [$0] }
            result.append(message)
        }
        return result
    }

    func received() throws -> [ReceivedMessage] {
        try messages().map { (GeneratedJobs.tag(of: $0.body), $0.sender, $0.recipients, $0.body) }
    }

    func stop() { child.stop() }
}

/// aiosmtpd (scripts/relays/recorder.py) or the scripted fault server
/// (scripts/relays/fault_server.py), recording every accepted transaction as JSON.
final class RecordingRelay {
    struct Record: Decodable {
        var mail_from: String
        var rcpt_tos: [String]
        var data_b64: String
        /// "DATA" or "BDAT" (the fault server says; aiosmtpd does not).
        var mode: String?
        var data: [UInt8] { [UInt8](Data(base64Encoded: data_b64) ?? Data()) }
        /// The null sender is recorded as "<>".
        var received: ReceivedMessage { (GeneratedJobs.tag(of: data), mail_from == "<>" ? "" : mail_from, rcpt_tos, data) }
    }

    func received() throws -> [ReceivedMessage] { try records().map(\.received) }

    let port: UInt16
    let out: String
    let child: ChildProcess

    init(in directory: String, script: String = "recorder.py", arguments: [String] = [], label: String = "relay",
         host: String = "127.0.0.1", port requested: UInt16 = 0) throws {
        out = directory + "/\(label)-records"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let ready = directory + "/\(label).port"
        child = try ChildProcess(label, executable: try TestTools.python,
                                 arguments: [try TestTools.scripts + "/relays/" + script, "--host", host, "--port", String(requested),
                                             "--out", out, "--ready-file", ready, "--lifetime", "600"] + arguments,
                                 logTo: directory + "/\(label).log")
        let deadline = Date().addingTimeInterval(20)
        var found: UInt16?
        while Date() < deadline {
            if let text = try? String(contentsOfFile: ready, encoding: .utf8),
               let p = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)) { found = p; break }
            if !child.process.isRunning { break }
            usleep(50_000)
        }
        guard let found else {
            throw MissingTool(description: "\(script) did not start: \(child.output)")
        }
        port = found
    }

    func records() throws -> [Record] {
        let names = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return try names.map { try JSONDecoder().decode(Record.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/" + $0))) }
    }

    func file(_ name: String) -> String? { try? String(contentsOfFile: out + "/" + name, encoding: .utf8) }

    func stop() { child.stop() }
}
