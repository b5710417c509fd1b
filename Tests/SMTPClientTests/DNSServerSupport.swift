// What the MX resolution tests run against: scripts/relays/dns_server.py (dnslib, in the
// venv scripts/install-test-deps makes) serving a zone on a free loopback port over UDP and
// TCP, bounded by --lifetime and stopped by its PID; a clock the tests move by hand; a
// seeded random source. A missing venv is a failure that says how to get it, never a skip.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import Synchronization
import XCTest
import SMTPClient

/// An authoritative DNS server for one zone (master-file text, names fully qualified).
final class TestDNSServer {
    struct Query: Decodable, Equatable {
        var name: String
        var type: String
        var transport: String
    }

    let host: String
    let port: UInt16
    let directory: String
    private let process = Process()
    private var queryLog: String { directory + "/queries.jsonl" }
    var log: String { directory + "/dns.log" }

    /// `servfail`: names answered SERVFAIL; `drop`: names never answered; `truncate`: names
    /// answered with TC=1 over UDP (the full answer only over TCP); `negativeTTL`: TTL and
    /// MINIMUM of the SOA in NXDOMAIN and NODATA answers.
    init(zone: String, host: String = "127.0.0.1", servfail: [String] = [], drop: [String] = [],
         truncate: [String] = [], negativeTTL: Int = 300, lifetime: Int = 300) throws {
        self.host = host
        directory = NSTemporaryDirectory() + "poold-dns-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try zone.write(toFile: directory + "/zone", atomically: true, encoding: .utf8)
        let ready = directory + "/port"
        var arguments = [try DNSTestTools.scripts + "/relays/dns_server.py", "--zone", directory + "/zone",
                         "--host", host, "--port", "0", "--ready-file", ready, "--lifetime", String(lifetime),
                         "--negative-ttl", String(negativeTTL), "--query-log", directory + "/queries.jsonl"]
        for name in servfail { arguments += ["--servfail", name] }
        for name in drop { arguments += ["--drop", name] }
        for name in truncate { arguments += ["--truncate", name] }
        process.executableURL = URL(fileURLWithPath: try DNSTestTools.python)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: directory + "/dns.log", contents: nil)
        let handle = FileHandle(forWritingAtPath: directory + "/dns.log")
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        var found: UInt16?
        while Date() < deadline {
            if let text = try? String(contentsOfFile: ready, encoding: .utf8),
               let p = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)) { found = p; break }
            if !process.isRunning { break }
            usleep(20_000)
        }
        guard let found else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw DNSTestSetupError(description: "dns_server.py did not start: \((try? String(contentsOfFile: directory + "/dns.log", encoding: .utf8)) ?? "")")
        }
        port = found
    }

    /// DNS_SERVER for this server.
    var address: DNSServerAddress {
        DNSServerAddress(address: IPAddress(host)!, port: port)
    }

    /// Every question asked so far, in order.
    func queries() -> [Query] {
        guard let text = try? String(contentsOfFile: queryLog, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Query.self, from: Data($0.utf8)) }
    }

    /// How many times `name` was asked about (any type, unless given).
    func queryCount(_ name: String, type: String? = nil) -> Int {
        queries().filter { $0.name == name && (type == nil || $0.type == type) }.count
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct DNSTestSetupError: Error, CustomStringConvertible {
    var description: String
}

enum DNSTestTools {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
    static func require(_ name: String, fallback: String) throws -> String {
        if let v = ProcessInfo.processInfo.environment[name], !v.isEmpty { return v }
        if FileManager.default.fileExists(atPath: fallback) { return fallback }
        throw DNSTestSetupError(description: "\(name) is not set and \(fallback) does not exist: run the suite with scripts/test, which installs dnslib in .venv")
    }
    static var python: String { get throws { try require("POOLD_PYTHON", fallback: repository + "/.venv/bin/python") } }
    static var scripts: String { get throws { try require("POOLD_SCRIPTS", fallback: repository + "/scripts") } }
}

/// A monotonic clock that moves only when the test says so.
final class ManualClock: MonotonicClock {
    private let instant = Mutex(ContinuousClock.now)
    func now() -> ContinuousClock.Instant { instant.withLock { $0 } }
    func advance(by duration: Duration) { instant.withLock { $0 = $0.advanced(by: duration) } }
}

/// SplitMix64: a small seeded generator, so "random" orders repeat from run to run.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ResolverSettings {
    /// Test settings: the given server, one try of one second per question.
    static func testing(_ server: TestDNSServer) -> ResolverSettings {
        var settings = ResolverSettings(server: server.address)
        settings.answerTimeout = .seconds(1)
        settings.attempts = 1
        return settings
    }
}
