// The wiring, end to end: a real poold child under a fake systemd (a notify socket the
// test owns, WATCHDOG_USEC), with METRICS_FILE and LOG_DIR, delivering to smtp-sink.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class OperationsWiringTests: XCTestCase {
    func testUnderSystemdPooldSaysReadyPingsTheWatchdogReloadsAndStopsAndKeepsMetricsAndWorkerLogs() throws {
        let fixture = try SpoolFixture("wiring")
        let sink = try SmtpSink(in: fixture.directory)
        defer { sink.stop() }
        let logs = fixture.directory + "/log", metrics = fixture.directory + "/poold.prom"
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(sink.port)", "LOG_DIR=\(logs)", "METRICS_FILE=\(metrics)"])
        let listener = try NotifyListener(path: fixture.directory + "/notify")
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = fixture.directory + "/notify"
        environment["WATCHDOG_USEC"] = "2000000"     // a ping at least every second
        environment.removeValue(forKey: "WATCHDOG_PID")
        let child = try ChildProcess("poold", executable: try TestTools.binDirectory + "/poold", arguments: ["--config", fixture.configPath],
                                     logTo: fixture.directory + "/poold.log", environment: environment)
        defer { child.stop() }
        let ready = try XCTUnwrap(listener.receive(timeout: 15), "no READY=1: \(child.output)")
        XCTAssertTrue(ready.hasPrefix("READY=1\nSTATUS=0 queued"), ready)

        let jobs = GeneratedJobs.mixed(count: 20, seed: 5)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        XCTAssertTrue(eventually(timeout: 30) { fixture.jobsLeft().isEmpty }, "jobs still queued: \(fixture.jobsLeft().count)")

        var heard: [String] = []
        let deadline = Date().addingTimeInterval(8)
        while Date() < deadline, !heard.contains(where: { $0.hasPrefix("STATUS=0 queued") && $0.contains("\(jobs.deliveries.count) delivered") }) || !heard.contains("WATCHDOG=1") {
            if let m = listener.receive(timeout: 1) { heard.append(m) }
        }
        XCTAssertTrue(heard.contains("WATCHDOG=1"), "\(heard)")
        XCTAssertTrue(heard.contains { $0.contains("\(jobs.deliveries.count) delivered") }, "\(heard)")

        XCTAssertTrue(eventually(timeout: 10) {
            (try? String(contentsOfFile: metrics, encoding: .utf8)).map { text in
                let parsed = try? Exposition(text)
                let delivered = parsed?.samples.filter { $0.name == "poold_worker_delivered_total" }.reduce(0) { $0 + $1.value }
                let finished = parsed?.samples.filter { $0.name == "poold_worker_jobs_total" }.reduce(0) { $0 + $1.value }
                return delivered == Double(jobs.deliveries.count) && finished == Double(jobs.files.count)
            } ?? false
        }, "metrics: \((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "none")")

        let files = try FileManager.default.contentsOfDirectory(atPath: logs).sorted()
        XCTAssertEqual(files.count, 2, "\(files)")
        for (n, file) in files.enumerated() {
            XCTAssertTrue(file.hasPrefix("smtpw\(n + 1)-") && file.hasSuffix(".log"), file)
            let lines = try String(contentsOfFile: logs + "/" + file, encoding: .utf8).split(separator: "\n")
            XCTAssertTrue(lines.first?.contains(" worker \(n + 1): relay 127.0.0.1:\(sink.port)") == true, "\(lines.first ?? "")")
            XCTAssertTrue(lines.dropFirst().allSatisfy { $0.contains(" job=") && $0.contains("worker=\(n + 1)") }, "\(lines)")
        }

        kill(child.pid, SIGHUP)
        var reload: [String] = []
        while let m = listener.receive(timeout: 5) {
            reload.append(m)
            if m.hasPrefix("READY=1") { break }
        }
        let reloading = try XCTUnwrap(reload.firstIndex { $0.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") }, "\(reload)")
        XCTAssertNotNil(reload[reloading...].firstIndex { $0.hasPrefix("READY=1") }, "READY=1 after RELOADING=1: \(reload)")

        kill(child.pid, SIGTERM)
        var stop: [String] = []
        while let m = listener.receive(timeout: 5) {
            stop.append(m)
            if m == "STOPPING=1" { break }
        }
        XCTAssertEqual(stop.last, "STOPPING=1")
        XCTAssertEqual(child.waitForExit(timeout: 15), 0, child.output)
        XCTAssertEqual(try Exposition(String(contentsOfFile: metrics, encoding: .utf8)).value("poold_up"), 0, "the last metrics say stopped")
    }
}
