// A spool, a configuration and a daemon for one test, plus a generator of list-like jobs
// that knows exactly what each relay must receive.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class SpoolFixture {
    let directory: String
    let spoolDirectory: String
    let configPath: String

    init(_ label: String) throws {
        directory = try makeTemporaryDirectory(label)
        spoolDirectory = directory + "/spool"
        configPath = directory + "/poold.cfg"
        try FileManager.default.createDirectory(atPath: spoolDirectory, withIntermediateDirectories: true)
    }

    var spool: Spool { Spool(root: spoolDirectory) }

    /// Writes the configuration: SPOOL_DIR plus `lines`.
    func configure(_ lines: [String]) throws {
        let text = (["SPOOL_DIR=\(spoolDirectory)"] + lines).joined(separator: "\n") + "\n"
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func configuration() throws -> SiteConfiguration { try SiteConfiguration.load(path: configPath) }

    /// Drops a job into the spool the way list software does (temporary name, rename).
    func drop(_ name: String, _ bytes: [UInt8]) throws {
        try AtomicFile.write(directory: spoolDirectory, name: name, bytes: bytes, sync: false)
    }

    /// Runs `poold --drain` in this process and returns when it ends.
    @discardableResult
    func drain(timeout: Double = 120, clock: @escaping @Sendable () -> Date = { Date() }) throws -> Daemon {
        let daemon = Daemon(config: try configuration(), draining: true, clock: clock)
        try daemon.start()
        let done = DispatchSemaphore(value: 0)
        Thread { _ = daemon.wait(); done.signal() }.start()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            daemon.shutdown()
            _ = done.wait(timeout: .now() + 30)
            throw MissingTool(description: "drain did not finish within \(timeout) s")
        }
        return daemon
    }

    /// Starts the daemon (watching the spool) in this process.
    func start(clock: @escaping @Sendable () -> Date = { Date() }) throws -> RunningDaemon {
        let daemon = Daemon(config: try configuration(), draining: false, clock: clock)
        try daemon.start()
        return RunningDaemon(daemon)
    }

    func jobsLeft() -> [String] { ((try? spool.jobs()) ?? []).map(\.fileName) }
    func deferredJobs() -> [String] { ((try? spool.jobs(in: spool.deferredDirectory)) ?? []).map(\.fileName) }
    func badJobs() -> [String] { spool.badJobs() }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

final class RunningDaemon: @unchecked Sendable {
    let daemon: Daemon
    private let done = DispatchSemaphore(value: 0)
    private var status: Int32?

    init(_ daemon: Daemon) {
        self.daemon = daemon
        Thread { [self] in status = daemon.wait(); done.signal() }.start()
    }

    @discardableResult
    func stop(timeout: Double = 30) -> Int32? {
        daemon.shutdown()
        return done.wait(timeout: .now() + timeout) == .timedOut ? nil : status
    }
}

/// Waits until `condition` holds, polling; false at the deadline.
func eventually(timeout: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// List-like jobs and what the relay must receive for each.
struct GeneratedJobs {
    struct Expected: Hashable {
        var tag: String        // X-Test-Id of the message
        var recipient: String
    }
    /// tag → the message as the relay must store it (dot-stuffing undone, CRLF)
    var messages: [String: [UInt8]] = [:]
    /// tag → envelope sender
    var senders: [String: String] = [:]
    var deliveries: [Expected] = []
    var files: [(name: String, bytes: [UInt8])] = []

    /// `count` jobs of mixed shapes, deterministic for a seed.
    static func mixed(count: Int, seed: UInt64 = 42, pool: Character = "A") -> GeneratedJobs {
        var g = GeneratedJobs()
        var rng = SeededRandom(seed)
        for n in 0..<count {
            let shape = n % 6
            let crlf = n % 2 == 1
            let name = "\(pool)\(String(format: "%08d", n + 1)).MAIL"
            var file: [UInt8] = []
            let transactions = shape == 3 ? 3 : 1
            if n % 5 == 0 { file += line("HELO lists.example.org", crlf) }
            for t in 0..<transactions {
                let tag = "\(name)-\(t)"
                let recipientCount: Int
                switch shape {
                case 0, 3: recipientCount = 1
                case 1: recipientCount = Int(rng.next() % 30) + 2
                case 2: recipientCount = Int(rng.next() % 220) + 50   // over MAXBSMTP=100: split
                default: recipientCount = Int(rng.next() % 5) + 1
                }
                let sender = n % 7 == 0 ? "" : "owner-list\(n % 3)@lists.example.org"
                file += line("MAIL FROM:<\(sender)>", crlf)
                var rcpts: [String] = []
                for r in 0..<recipientCount {
                    let rcpt = "user\(r)-\(n)@d\(r % 9).example.\(r % 2 == 0 ? "com" : "net")"
                    rcpts.append(rcpt)
                    file += line("RCPT TO:<\(rcpt)>", crlf)
                }
                file += line("DATA", crlf)
                // The message, as the relay must store it, and its stuffed form for the file.
                var body: [[UInt8]] = [
                    Array("From: List <owner@lists.example.org>".utf8),
                    Array("Subject: posting \(n) part \(t)".utf8),
                    Array("X-Test-Id: \(tag)".utf8),
                    [],
                    Array("Hello list.".utf8),
                    Array(".a line that starts with a dot".utf8),
                    Array(".".utf8) + Array(".".utf8),   // a line of two dots
                ]
                if shape == 4 || shape == 5 { body.append(Array("8-bit: Grüße, naïve café — ünïcödé".utf8)) }
                if shape == 5 { body.append([0x4C, 0x61, 0x74, 0x69, 0x6E, 0x31, 0x3A, 0x20, 0xE9, 0xE8, 0xFC]) }  // raw Latin-1 bytes
                let filler = Int(rng.next() % 40)
                for k in 0..<filler { body.append(Array("line \(k) of filler text for a list posting, long enough to matter".utf8)) }
                var stored: [UInt8] = []
                for l in body {
                    stored += l + [13, 10]
                    file += line(l.first == UInt8(ascii: ".") ? [UInt8(ascii: ".")] + l : l, crlf)
                }
                file += line(".", crlf)
                g.messages[tag] = stored
                g.senders[tag] = sender
                g.deliveries += rcpts.map { Expected(tag: tag, recipient: $0) }
            }
            if n % 4 == 0 { file += line("QUIT", crlf) }
            g.files.append((name, file))
        }
        return g
    }

    static func line(_ text: String, _ crlf: Bool) -> [UInt8] { line(Array(text.utf8), crlf) }
    static func line(_ bytes: [UInt8], _ crlf: Bool) -> [UInt8] { bytes + (crlf ? [13, 10] : [10]) }

    /// The X-Test-Id header of a stored message.
    static func tag(of message: [UInt8]) -> String? {
        let head = Array(message.prefix(600))
        let key = Array("X-Test-Id: ".utf8)
        guard let start = (0...max(0, head.count - key.count)).first(where: { head[$0..<min($0 + key.count, head.count)].elementsEqual(key) }) else { return nil }
        let value = head[(start + key.count)...].prefix { $0 != 13 && $0 != 10 }
        return String(decoding: value, as: UTF8.self)
    }
}

struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
}

/// A clock that runs `rate` times faster than real time, from now.
final class FastClock: Sendable {
    let start = Date()
    let rate: Double
    init(rate: Double) { self.rate = rate }
    /// Seconds of this clock since it started.
    var elapsed: Double { Date().timeIntervalSince(start) * rate }
    var function: @Sendable () -> Date { { [self] in start.addingTimeInterval(elapsed) } }
}

/// A clock a test can move.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var now: Date
    init(_ date: Date) { now = date }
    var date: Date { lock.withLock { now } }
    func set(_ date: Date) { lock.withLock { now = date } }
    func advance(by seconds: Double) { lock.withLock { now = now.addingTimeInterval(seconds) } }
    var function: @Sendable () -> Date { { [self] in date } }

    /// A local time on a given weekday (1 = Sunday … 7 = Saturday) of a fixed week.
    static func local(weekday: Int, hour: Int, minute: Int) -> Date {
        var c = DateComponents()
        c.year = 2026; c.month = 11; c.day = 22 + (weekday - 1)   // 2026-11-22 is a Sunday
        c.hour = hour; c.minute = minute
        return Calendar.current.date(from: c)!
    }
}

/// A message as a relay received it, tagged by its X-Test-Id header.
typealias ReceivedMessage = (tag: String?, sender: String, recipients: [String], data: [UInt8])

/// Checks that every expected (message, recipient) arrived exactly once with its bytes.
func assertExactlyOnce(_ expected: GeneratedJobs, received: [ReceivedMessage],
                       file: StaticString = #filePath, line: UInt = #line) {
    var seen: [GeneratedJobs.Expected: Int] = [:]
    var wrongContent = 0
    var wrongSender = 0
    for message in received {
        guard let tag = message.tag else {
            XCTFail("a message without X-Test-Id arrived", file: file, line: line)
            continue
        }
        if message.data != expected.messages[tag] { wrongContent += 1 }
        if message.sender != expected.senders[tag] { wrongSender += 1 }
        for r in message.recipients { seen[.init(tag: tag, recipient: r), default: 0] += 1 }
    }
    XCTAssertEqual(wrongContent, 0, "messages whose bytes differ from the job", file: file, line: line)
    XCTAssertEqual(wrongSender, 0, "messages with the wrong envelope sender", file: file, line: line)
    let missing = expected.deliveries.filter { seen[$0] == nil }
    let duplicates = seen.filter { $0.value > 1 }
    let unexpected = Set(seen.keys).subtracting(expected.deliveries)
    func show<S: Sequence>(_ s: S) -> String where S.Element == GeneratedJobs.Expected { s.prefix(3).map { "\($0.tag) <\($0.recipient)>" }.joined(separator: ", ") }
    XCTAssertEqual(missing.count, 0, "lost, e.g. \(show(missing))", file: file, line: line)
    XCTAssertEqual(duplicates.count, 0, "sent twice, e.g. \(show(duplicates.keys))", file: file, line: line)
    XCTAssertEqual(unexpected.count, 0, "never asked for, e.g. \(show(unexpected))", file: file, line: line)
}
