// What an operator's tools see of poold: systemd's notifications on a socket the test
// owns, the metrics file read back by a parser of the exposition format, the per-worker
// log files across midnight, and `poolctl status --watch` run as a real process.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class OperationsTests: XCTestCase {
    // MARK: systemd notifications

    func testSystemdHearsReadyStatusWatchdogReloadingAndStoppingOnItsSocket() throws {
        let directory = try makeTemporaryDirectory("notify")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let listener = try NotifyListener(path: directory + "/notify")
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": directory + "/notify", "WATCHDOG_USEC": "30000000"])
        XCTAssertTrue(notifier.isEnabled)
        XCTAssertEqual(notifier.watchdogInterval, 15)

        notifier.ready(status: "3 queued")
        XCTAssertEqual(listener.receive(), "READY=1\nSTATUS=3 queued")
        notifier.status("3 queued")                       // unchanged: not sent again
        notifier.status("2 queued\nsecond line")
        XCTAssertEqual(listener.receive(), "STATUS=2 queued second line")
        notifier.pingWatchdog(now: 100)
        notifier.pingWatchdog(now: 110)                   // 10 s < 15 s: not due
        notifier.pingWatchdog(now: 115)
        XCTAssertEqual(listener.receive(), "WATCHDOG=1")
        XCTAssertEqual(listener.receive(), "WATCHDOG=1")
        let before = UInt64(SystemdNotifier.monotonicSeconds() * 1_000_000)
        notifier.reloading()
        let after = UInt64(SystemdNotifier.monotonicSeconds() * 1_000_000)
        let reloading = try XCTUnwrap(listener.receive()).split(separator: "\n")
        XCTAssertEqual(reloading.first, "RELOADING=1")
        let monotonic = try XCTUnwrap(reloading.last.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }, "\(reloading)")
        XCTAssertTrue((before...after).contains(monotonic), "MONOTONIC_USEC=\(monotonic) is not CLOCK_MONOTONIC now (\(before)…\(after))")
        notifier.stopping()
        XCTAssertEqual(listener.receive(), "STOPPING=1")
        XCTAssertNil(listener.receive(timeout: 0.2), "one datagram per message, nothing more")
    }

    func testAnAtSignNotifySocketIsReachedInTheAbstractNamespace() throws {
        let name = "poold-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listener = try NotifyListener(abstract: name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        XCTAssertTrue(notifier.send("READY=1"))
        XCTAssertEqual(listener.receive(), "READY=1")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "@" + name), "no file named after the socket")
    }

    func testWithoutNotifySocketNothingIsSentAndTheWatchdogIsOff() throws {
        let none = SystemdNotifier(environment: [:])
        XCTAssertFalse(none.isEnabled)
        XCTAssertFalse(none.send("READY=1"))
        XCTAssertNil(none.watchdogInterval)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000"]).watchdogInterval, "a watchdog needs the socket")
        XCTAssertNil(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"],
                                     processID: 4242).watchdogInterval, "WATCHDOG_PID names another process")
        XCTAssertEqual(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"],
                                       processID: 4242).watchdogInterval, 15)
        XCTAssertNil(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"]).watchdogInterval)
        for bad in ["", "relative/path", "@", "vsock:2:1234", "/" + String(repeating: "x", count: 120)] {
            XCTAssertNil(NotifyAddress(bad), bad)
        }
        XCTAssertFalse(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify"]).send("READY=1"),
                       "a socket nobody listens on is a failed send, not a crash")
    }

    // MARK: metrics

    func testTheMetricsFileParsesBackWithHelpAndTypeForEveryMetricAndTheSnapshotsFigures() throws {
        var snapshot = StatusSnapshot(daemon: "running", pools: ["-": PoolCount(queued: 3, bytes: 3000), "A": PoolCount(queued: 2, bytes: 500)],
                                      deferred: 4, bad: 1)
        snapshot.started = 1_763_950_000.5
        snapshot.updated = 1_763_953_600
        var busy = WorkerStatus(id: 1, host: "h:25", pools: "A-", state: .busy)
        busy.delivered = 10; busy.deferred = 2; busy.failed = 1; busy.quarantined = 1
        busy.connections = 3; busy.connectionFailures = 1; busy.bytes = 12345; busy.jobs = 5
        snapshot.workers = [busy, WorkerStatus(id: 2, host: "relay.example.org:587", pools: "*", state: .idle)]
        let extra = MetricFamily("poold_rate_limit_bits_per_second", .gauge, "A limit with \"odd\" \\ text\nover two lines",
                                 [MetricFamily.Sample([MetricFamily.Label("pools", "a \"quoted\" \\ name\nnext")], 1e6)])

        let text = MetricsFile.render(snapshot, extra: [extra])
        let metrics = try Exposition(text)

        XCTAssertEqual(metrics.value("poold_up"), 1)
        XCTAssertEqual(metrics.value("poold_start_time_seconds"), 1_763_950_000.5)
        XCTAssertEqual(metrics.value("poold_queued_jobs", ["pool": "default"]), 3)
        XCTAssertEqual(metrics.value("poold_queued_jobs", ["pool": "A"]), 2)
        XCTAssertEqual(metrics.value("poold_queued_bytes", ["pool": "default"]), 3000)
        XCTAssertEqual(metrics.value("poold_queued_bytes", ["pool": "A"]), 500)
        XCTAssertEqual(metrics.value("poold_deferred_jobs"), 4)
        XCTAssertEqual(metrics.value("poold_bad_jobs"), 1)
        let one = ["worker": "1", "host": "h:25"]
        XCTAssertEqual(metrics.value("poold_worker_delivered_total", one), 10)
        XCTAssertEqual(metrics.value("poold_worker_deferred_total", one), 2)
        XCTAssertEqual(metrics.value("poold_worker_failed_total", one), 1)
        XCTAssertEqual(metrics.value("poold_worker_jobs_total", one), 5)
        XCTAssertEqual(metrics.value("poold_worker_sent_bytes_total", one), 12345)
        XCTAssertEqual(metrics.value("poold_worker_connections_total", one), 3)
        XCTAssertEqual(metrics.value("poold_worker_connection_failures_total", one), 1)
        XCTAssertEqual(metrics.value("poold_worker_delivered_total", ["worker": "2", "host": "relay.example.org:587"]), 0)
        XCTAssertEqual(metrics.value("poold_worker_state", one.merging(["state": "busy"]) { a, _ in a }), 1)
        XCTAssertEqual(metrics.value("poold_worker_state", one.merging(["state": "idle"]) { a, _ in a }), 0)
        XCTAssertEqual(metrics.samples.filter { $0.name == "poold_worker_state" && $0.value == 1 }.count, 2, "one state per worker")
        XCTAssertEqual(metrics.value("poold_rate_limit_bits_per_second", ["pools": "a \"quoted\" \\ name\nnext"]), 1e6)
        XCTAssertEqual(metrics.help["poold_rate_limit_bits_per_second"], "A limit with \"odd\" \\ text\nover two lines")

        for sample in metrics.samples {
            XCTAssertTrue(sample.name.hasPrefix("poold_"), sample.name)
            XCTAssertNotNil(metrics.help[sample.name], "no HELP for \(sample.name)")
            let type = try XCTUnwrap(metrics.types[sample.name], "no TYPE for \(sample.name)")
            if type == "counter" { XCTAssertTrue(sample.name.hasSuffix("_total"), sample.name) }
        }
        var stopped = StatusSnapshot.scan(Spool(root: "/nonexistent"))
        stopped.workers = [WorkerStatus(id: 1, host: "h:25", pools: "*", state: .stopped)]
        XCTAssertEqual(try Exposition(MetricsFile.render(stopped)).value("poold_up"), 0)
    }

    func testTheMetricsFileIsReplacedWholeAndReadableByTheScraper() throws {
        let directory = try makeTemporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/poold.prom"
        try MetricsFile.write("# HELP poold_up x\n# TYPE poold_up gauge\npoold_up 1\n", to: path)
        try MetricsFile.write("# HELP poold_up x\n# TYPE poold_up gauge\npoold_up 0\n", to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "# HELP poold_up x\n# TYPE poold_up gauge\npoold_up 0\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["poold.prom"], "no temporary file left")
        XCTAssertEqual(try FileSystem.status(path).mode & 0o444, 0o444, "readable by the scraper's user")
        XCTAssertThrowsError(try MetricsFile.write("x\n", to: directory + "/missing/poold.prom"))
    }

    // MARK: per-worker log files

    func testAWorkerLogStartsANewFileAtTheFirstWriteOfANewDayWithTheSettingsFirst() throws {
        let directory = try makeTemporaryDirectory("workerlog") + "/log"   // created by the first write
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = TestClock(TestClock.local(weekday: 3, hour: 23, minute: 59))    // Tuesday 2026-11-24
        let header = "worker 3: relay h:25, pools A-, windows Mon-Fri 08:00-18:00"
        let log = WorkerLog(directory: directory, worker: 3, header: header, clock: clock.function)
        log.write("A00000001.MAIL: 2 delivered")
        clock.set(clock.date.addingTimeInterval(30))
        log.write("A00000002.MAIL: 1 deferred (451 try later)\nsecond line")
        clock.set(TestClock.local(weekday: 4, hour: 0, minute: 0).addingTimeInterval(1))
        log.write("A00000003.MAIL: 1 delivered")
        log.close()

        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).sorted(), ["smtpw3-20261124.log", "smtpw3-20261125.log"])
        let first = try lines(directory + "/smtpw3-20261124.log")
        let second = try lines(directory + "/smtpw3-20261125.log")
        XCTAssertEqual(first.map(\.text), [header, "A00000001.MAIL: 2 delivered", "A00000002.MAIL: 1 deferred (451 try later) second line"])
        XCTAssertEqual(second.map(\.text), [header, "A00000003.MAIL: 1 delivered"])
        XCTAssertTrue(first[1].time.hasPrefix("2026-11-24T23:59:00"), first[1].time)
        XCTAssertTrue(first[2].time.hasPrefix("2026-11-24T23:59:30"), first[2].time)
        XCTAssertTrue(second[1].time.hasPrefix("2026-11-25T00:00:01"), second[1].time)
        let mode = try FileSystem.status(directory + "/smtpw3-20261125.log").mode
        XCTAssertEqual(mode & 0o600, 0o600)
        XCTAssertEqual(mode & 0o027, 0, "not writable by the group, nothing for others: \(String(mode, radix: 8))")
    }

    func testARestartOnTheSameDayAppendsToTheDaysFileAndRecordsTheSettingsAgain() throws {
        let directory = try makeTemporaryDirectory("workerlog-restart")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = TestClock(TestClock.local(weekday: 2, hour: 9, minute: 0))
        WorkerLog(directory: directory, worker: 1, header: "worker 1: relay a:25", clock: clock.function).write("before")
        clock.set(clock.date.addingTimeInterval(600))
        WorkerLog(directory: directory, worker: 1, header: "worker 1: relay b:25", clock: clock.function).write("after")
        XCTAssertEqual(try lines(directory + "/smtpw1-20261123.log").map(\.text), ["worker 1: relay a:25", "before", "worker 1: relay b:25", "after"])
    }

    func testLinesFromManyThreadsStayWhole() throws {
        let directory = try makeTemporaryDirectory("workerlog-threads")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = WorkerLog(directory: directory, worker: 2, header: "worker 2")
        let padding = String(repeating: "x", count: 300)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<250 { log.write("thread \(t) line \(i) \(padding)") }
        }
        log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        let all = try files.flatMap { try lines(directory + "/" + $0) }.map(\.text).filter { $0 != "worker 2" }
        XCTAssertEqual(all.count, 2000)
        XCTAssertEqual(Set(all).count, 2000)
        XCTAssertTrue(all.allSatisfy { $0.hasPrefix("thread ") && $0.hasSuffix(padding) })
    }

    func testALogDirectoryThatCannotBeWrittenDropsLinesUntilItCan() throws {
        let directory = try makeTemporaryDirectory("workerlog-blocked")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let blocked = directory + "/log"
        FileManager.default.createFile(atPath: blocked, contents: Data("a file, not a directory".utf8))
        let log = WorkerLog(directory: blocked, worker: 1, header: "worker 1")
        log.write("lost")
        try FileManager.default.removeItem(atPath: blocked)
        log.write("kept")
        let files = try FileManager.default.contentsOfDirectory(atPath: blocked)
        XCTAssertEqual(files.count, 1)
        XCTAssertEqual(try lines(blocked + "/" + files[0]).map(\.text), ["worker 1", "kept"])
    }

    // MARK: poolctl status --watch

    func testStatusWatchWithACountPrintsThatManyBlocksAndExits() throws {
        let fixture = try SpoolFixture("watch-count")
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(freePort())"])
        try fixture.drop("A00000001.MAIL", JobWriter.bsmtp(message: Array("Subject: x\r\n\r\ny\r\n".utf8), from: "a@b.org", to: ["c@d.org"]))
        let started = Date()
        let watch = try poolctl(["--config", fixture.configPath, "status", "--watch", "--count", "2", "--interval", "0.2"])
        XCTAssertEqual(watch.status, 0, watch.err)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.2, "one interval between the two")
        let blocks = Self.blocks(watch.out)
        XCTAssertEqual(blocks.count, 2, watch.out)
        for block in blocks {
            XCTAssertTrue(block.contains("poold stopped, spool \(fixture.spoolDirectory)"), block)
            XCTAssertTrue(block.contains("RCPT/S"), block)
            XCTAssertTrue(block.contains("throughput: — (poold is stopped); 1 job(s) queued"), block)
        }
        XCTAssertFalse(watch.out.contains("\u{1B}["), "no terminal escapes into a pipe")
    }

    func testStatusWatchShowsEachWorkersRateAndTheTimeToEmptyFromTheDaemonsCounters() throws {
        let fixture = try SpoolFixture("watch-rate")
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(freePort())"])
        for n in 1...10 { try fixture.drop(String(format: "A%08d.MAIL", n), Array("MAIL FROM:<a@b.org>\n".utf8)) }
        // This test plays the daemon: it holds the spool's lock and writes the status file.
        let spool = fixture.spool
        try spool.prepare()
        let lock = try XCTUnwrap(try spool.lock())
        defer { lock.close() }
        let t0 = Date().timeIntervalSince1970
        func writeStatus(updated: Double, delivered: (Int, Int), jobs: (Int, Int)) throws {
            var s = StatusSnapshot(daemon: "running")
            s.pid = getpid()
            s.started = t0 - 100
            s.updated = updated
            var w1 = WorkerStatus(id: 1, host: "127.0.0.1:25", pools: "*", state: .busy)
            var w2 = WorkerStatus(id: 2, host: "127.0.0.1:25", pools: "*", state: .idle)
            (w1.delivered, w2.delivered) = delivered
            (w1.jobs, w2.jobs) = jobs
            s.workers = [w1, w2]
            try AtomicFile.write(directory: spool.stateDirectory, name: "status.json", bytes: s.encoded(), sync: false)
        }
        try writeStatus(updated: t0 - 2, delivered: (100, 50), jobs: (20, 7))
        let out = fixture.directory + "/watch.out"
        let child = try ChildProcess("poolctl", executable: try TestTools.binDirectory + "/poolctl",
                                     arguments: ["--config", fixture.configPath, "status", "--watch", "--count", "2", "--interval", "1"],
                                     logTo: out)
        XCTAssertTrue(eventually(timeout: 10) { child.output.contains("throughput:") }, "no first block: \(child.output)")
        try writeStatus(updated: t0, delivered: (110, 50), jobs: (24, 7))   // 2 s later: 5 rcpt/s and 2 jobs/s
        XCTAssertEqual(child.waitForExit(timeout: 15), 0, child.output)

        let blocks = Self.blocks(child.output)
        XCTAssertEqual(blocks.count, 2, child.output)
        XCTAssertTrue(blocks[0].contains("poold running (pid \(getpid()))"), blocks[0])
        XCTAssertTrue(blocks[0].contains("throughput: — (waiting for a second status update); 10 job(s) queued, empty in —"), blocks[0])
        let rows = blocks[1].split(separator: "\n").map(String.init)
        let worker1 = try XCTUnwrap(rows.first { $0.hasPrefix("     1  ") }, blocks[1])
        let worker2 = try XCTUnwrap(rows.first { $0.hasPrefix("     2  ") }, blocks[1])
        XCTAssertTrue(worker1.hasSuffix("  5.0"), worker1)
        XCTAssertTrue(worker2.hasSuffix("  0.0"), worker2)
        XCTAssertTrue(blocks[1].contains("throughput: 5.0 rcpt/s, 2.0 jobs/s; 10 job(s) queued, empty in 5s"), blocks[1])
    }

    func testStatusWatchRefusesOptionsThatDoNotGoTogether() throws {
        let fixture = try SpoolFixture("watch-options")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25"])
        for bad in [["--watch", "--json"], ["--watch", "--count", "0"], ["--watch", "--interval", "0"],
                    ["--watch", "--interval", "soon"], ["--count", "2"], ["--watch", "--count"]] {
            let result = try poolctl(["--config", fixture.configPath, "status"] + bad)
            XCTAssertEqual(result.status, 64, "\(bad): \(result.out)")
            XCTAssertTrue(result.err.hasPrefix("poolctl: status: "), "\(bad): \(result.err)")
            XCTAssertTrue(result.out.isEmpty, "\(bad)")
        }
    }

    // MARK: helpers

    /// The blocks of `--watch` output, each from its header line.
    static func blocks(_ output: String) -> [String] {
        output.components(separatedBy: "poolctl status --watch: ").dropFirst().map { $0 }
    }

    func lines(_ path: String) throws -> [(time: String, text: String)] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            let space = try XCTUnwrap(line.firstIndex(of: " "), "no timestamp: \(line)")
            let time = String(line[..<space])
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression), time)
            return (time, String(line[line.index(after: space)...]))
        }
    }

    func poolctl(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestTools.binDirectory + "/poolctl")
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Both outputs are a few kilobytes at most: reading one after the other cannot block.
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }
}

/// A notification socket as systemd holds it: AF_UNIX, SOCK_DGRAM, bound to a path or an abstract name.
final class NotifyListener {
    let fd: Int32
    let path: String?

    convenience init(path: String) throws { try self.init(address: Array(path.utf8) + [0], path: path) }
    convenience init(abstract name: String) throws { try self.init(address: [0] + Array(name.utf8), path: nil) }

    private init(address: [UInt8], path: String?) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: address) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.count)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else {
            let error = SystemError("bind", path: path ?? "@abstract")
            close(fd)
            throw error
        }
    }

    /// The next datagram, or nil when none arrives within `timeout` seconds.
    func receive(timeout: Double = 5) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}

/// Prometheus' text format read back strictly: every line is a comment (# HELP, # TYPE)
/// or `name{label="value",…} value`; a family's HELP and TYPE come before its samples.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    var samples: [Sample] = []
    var help: [String: String] = [:]
    var types: [String: String] = [:]

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    init(_ text: String) throws {
        XCTAssertTrue(text.hasSuffix("\n"), "the last line ends with a newline")
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw Malformed(description: "comment without text: \(line)") }
                if line.hasPrefix("# HELP ") {
                    guard help[parts[0]] == nil else { throw Malformed(description: "HELP twice for \(parts[0])") }
                    help[parts[0]] = Exposition.unescape(parts[1], quotes: false)
                } else {
                    guard types[parts[0]] == nil, ["gauge", "counter"].contains(parts[1]) else { throw Malformed(description: "bad TYPE: \(line)") }
                    guard help[parts[0]] != nil else { throw Malformed(description: "TYPE before HELP: \(line)") }
                    types[parts[0]] = parts[1]
                }
                continue
            }
            guard !line.hasPrefix("#") else { continue }
            samples.append(try Exposition.sample(line))
            guard types[samples.last!.name] != nil else { throw Malformed(description: "sample before its TYPE: \(line)") }
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { $0.name == name && $0.labels == labels }
        XCTAssertLessThanOrEqual(matching.count, 1, "\(name)\(labels) twice")
        return matching.first?.value
    }

    static func sample(_ line: String) throws -> Sample {
        let chars = Array(line)
        var i = 0
        while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == ":" { i += 1 }
        let name = String(chars[..<i])
        guard !name.isEmpty, !(name.first!.isNumber) else { throw Malformed(description: "no metric name: \(line)") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                let start = i
                while i < chars.count, chars[i] != "=" { i += 1 }
                let key = String(chars[start..<i])
                guard i + 1 < chars.count, chars[i + 1] == "\"" else { throw Malformed(description: "label without a quoted value: \(line)") }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count { value.append(chars[i]); i += 1 }
                    value.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw Malformed(description: "unterminated label value: \(line)") }
                i += 1
                labels[key] = unescape(value, quotes: true)
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            guard i < chars.count else { throw Malformed(description: "unterminated labels: \(line)") }
            i += 1
        }
        guard i < chars.count, chars[i] == " " else { throw Malformed(description: "no space before the value: \(line)") }
        let text = String(chars[(i + 1)...])
        let value: Double? = switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        default: Double(text)
        }
        guard let value else { throw Malformed(description: "value is not a number: \(line)") }
        return Sample(name: name, labels: labels, value: value)
    }

    static func unescape(_ text: String, quotes: Bool) -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "\\": out.append("\\")
                case "\"" where quotes: out.append("\"")
                default: out.append("\\"); out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
