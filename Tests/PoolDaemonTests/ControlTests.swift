// Steering a running poold: SIGHUP adds and removes workers while mail flows and loses
// nothing; a bad new configuration is refused and the old one kept; the control socket
// pauses and resumes workers, holds and releases jobs, and refuses a stranger.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SpoolKit
@testable import PoolDaemon

final class ControlTests: XCTestCase {
    func poolctl(_ fixture: SpoolFixture, _ arguments: [String], asUser uid: Int? = nil) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        let binary = try TestTools.binDirectory + "/poolctl"
        if let uid {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", binary, "--config", fixture.configPath] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--config", fixture.configPath] + arguments
        }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// `poolctl status --json`, decoded; nil when it fails.
    func status(_ fixture: SpoolFixture) -> StatusSnapshot? {
        (try? poolctl(fixture, ["status", "--json"])).flatMap { StatusSnapshot.decode(Array($0.out.utf8)) }
    }

    func startPoold(_ fixture: SpoolFixture) throws -> ChildProcess {
        let child = try ChildProcess("poold", executable: try TestTools.binDirectory + "/poold", arguments: ["--config", fixture.configPath],
                                     logTo: fixture.directory + "/poold.log")
        XCTAssertTrue(eventually(timeout: 10) { FileManager.default.fileExists(atPath: fixture.spoolDirectory + "/.poold.sock") }, child.output)
        return child
    }

    func testAReloadAddsAndRemovesWorkersWhileMailFlowsAndLosesNothing() throws {
        let fixture = try SpoolFixture("reload")
        let first = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", "dot:delay:0.02", "--fault-repeat"], label: "first")
        let second = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"], label: "second")
        defer { first.stop(); second.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(first.port)"])
        let jobs = GeneratedJobs.mixed(count: 150, seed: 5)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        let poold = try startPoold(fixture)
        XCTAssertTrue(eventually(timeout: 10) { ((try? first.records()) ?? []).count >= 5 })
        // Worker 1 now goes to the second relay and two more workers join.
        try fixture.configure(["SMTP_FORWARD_1=3*127.0.0.1:\(second.port)"])
        kill(poold.pid, SIGHUP)
        XCTAssertTrue(eventually(timeout: 60) { fixture.jobsLeft().isEmpty }, "left: \(fixture.jobsLeft().count)")
        XCTAssertTrue(poold.output.contains("reloaded"), poold.output.suffix(2000).description)
        // Mail that comes after the reload goes only to the new relay.
        let firstCount = try first.records().count
        let later = GeneratedJobs.mixed(count: 10, seed: 6, pool: "B")
        for f in later.files { try fixture.drop(f.name, f.bytes) }
        XCTAssertTrue(eventually(timeout: 30) { fixture.jobsLeft().isEmpty }, "left: \(fixture.jobsLeft().count)")
        XCTAssertEqual(try first.records().count, firstCount, "the line the reload changed still sent to its old relay")
        XCTAssertGreaterThan(try second.records().count, 0)
        kill(poold.pid, SIGTERM)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
        var all = jobs
        all.messages.merge(later.messages) { $1 }
        all.senders.merge(later.senders) { $1 }
        all.deliveries += later.deliveries
        assertExactlyOnce(all, received: try first.received() + second.received())
        // The closing count covers the workers the reload replaced too.
        XCTAssertTrue(poold.output.contains("poold stopped: \(all.deliveries.count) delivered, 0 deferred, 0 failed"),
                      "\(all.deliveries.count) recipients: \(poold.output.suffix(300))")
    }

    /// Worker 1's relay takes 8 s to answer a final dot. A reload that changes worker 1 and
    /// adds worker 2 must not wait for that dot: the control socket answers at once, and
    /// the queued jobs reach the new worker's relay while worker 1 still waits.
    func testAReloadDoesNotWaitForAWorkerStuckOnASlowRelay() throws {
        let fixture = try SpoolFixture("slowreload")
        let slow = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", "dot:delay:8"], label: "slow")
        let fast = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"], label: "fast")
        defer { slow.stop(); fast.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(slow.port)"])
        let running = try fixture.start()
        let message = Array("Subject: x\r\n\r\ny\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "a@b.org", to: ["first@d.org"]))
        XCTAssertTrue(eventually(timeout: 10) { running.daemon.board.all.first?.job == "A1.MAIL" }, "worker 1 never took the job")
        for n in 2...6 { try fixture.drop("A\(n).MAIL", JobWriter.bsmtp(message: message, from: "a@b.org", to: ["r\(n)@d.org"])) }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(fast.port);POOL=B", "SMTP_FORWARD_2=127.0.0.1:\(fast.port)"])
        let peer = ControlPeer(pid: getpid(), uid: 0, gid: 0)
        let started = Date()
        let answer = running.daemon.reload()
        XCTAssertTrue(answer.hasPrefix("OK"), answer)
        XCTAssertTrue(running.daemon.command("flush", peer: peer).hasPrefix("OK"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "the reload and the next command waited for worker 1's transaction")
        XCTAssertTrue(eventually(timeout: 5) { ((try? fast.records()) ?? []).count == 5 }, "the new worker did not take the queued jobs at once")
        XCTAssertLessThan(Date().timeIntervalSince(started), 7, "the queued jobs waited for the slow dot")
        XCTAssertEqual(running.stop(timeout: 30), 0)
        XCTAssertEqual(try slow.records().flatMap(\.rcpt_tos), ["first@d.org"], "worker 1 finished its transaction")
        XCTAssertEqual(fixture.jobsLeft(), [])
    }

    func testABadNewConfigurationIsRefusedAndTheOldOneKept() throws {
        let fixture = try SpoolFixture("badreload")
        let relay = try RecordingRelay(in: fixture.directory)
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        let poold = try startPoold(fixture)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "MAXBSMTP=lots"])
        let answer = try poolctl(fixture, ["reload"])
        XCTAssertEqual(answer.status, 78, "poolctl checks the file first")
        XCTAssertTrue(answer.err.contains("poold.cfg:3: MAXBSMTP"), answer.err)
        kill(poold.pid, SIGHUP)
        XCTAssertTrue(eventually(timeout: 5) { poold.output.contains("reload refused, keeping the configuration in force") }, poold.output)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: Array("Subject: x\r\n\r\ny\r\n".utf8), from: "a@b.org", to: ["c@d.org"]))
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count == 1 }, "the old configuration stopped working")
        // The daemon can still be seen and steered while the file is broken.
        let status = try poolctl(fixture, ["status"])
        XCTAssertEqual(status.status, 0, status.err)
        XCTAssertTrue(status.err.contains("poold.cfg:3: MAXBSMTP") && status.out.contains("poold running"), status.err + status.out)
        XCTAssertEqual(try poolctl(fixture, ["stop"]).status, 0)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
        XCTAssertEqual(try poolctl(fixture, ["status"]).status, 78, "with no daemon running, the broken file is an error")
    }

    func testPauseResumeHoldReleaseAndFlushThroughTheControlSocket() throws {
        let fixture = try SpoolFixture("control")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        let poold = try startPoold(fixture)
        XCTAssertEqual(try poolctl(fixture, ["pause", "1"]).status, 0)
        XCTAssertTrue(eventually(timeout: 5) {
            self.status(fixture)?.workers.first?.state == .paused
        })
        let message = Array("Subject: x\r\n\r\ny\r\n".utf8)
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: message, from: "a@b.org", to: ["one@d.org"]))
        try fixture.drop("A2.MAIL", JobWriter.bsmtp(message: message, from: "a@b.org", to: ["two@d.org"]))
        // The daemon has seen both jobs, and the paused worker holds neither.
        XCTAssertTrue(eventually(timeout: 10) {
            guard let status = self.status(fixture) else { return false }
            return status.pools["A"]?.queued == 2 && status.workers.first?.state == .paused && status.workers.first?.job == nil
        })
        XCTAssertEqual(try relay.records().count, 0, "a paused worker sent mail")
        let hold = try poolctl(fixture, ["hold", "A2.MAIL"])
        XCTAssertEqual(hold.status, 0, hold.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.spoolDirectory + "/hold/A2.MAIL"))
        let show = try poolctl(fixture, ["show", "A2.MAIL"])
        XCTAssertTrue(show.out.contains("held") && show.out.contains("<two@d.org>  waiting"), show.out)
        XCTAssertTrue(eventually(timeout: 5) {
            self.status(fixture)?.held == 1
        }, "status counts the held job")
        XCTAssertEqual(try poolctl(fixture, ["hold", "B"]).status, 0)
        XCTAssertTrue(eventually(timeout: 5) { ((try? self.poolctl(fixture, ["status"]))?.out ?? "").contains("held (poolctl release B)") },
                      "status shows the held pool")
        XCTAssertEqual(try poolctl(fixture, ["release", "B"]).status, 0)
        XCTAssertEqual(try poolctl(fixture, ["resume", "1"]).status, 0)
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count == 1 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: fixture.spoolDirectory + "/hold/A2.MAIL"), "the held job stayed")
        XCTAssertEqual(try relay.records().flatMap(\.rcpt_tos), ["one@d.org"])
        XCTAssertEqual(try poolctl(fixture, ["release", "A2.MAIL"]).status, 0)
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count == 2 })
        let flush = try poolctl(fixture, ["flush"])
        XCTAssertEqual(flush.status, 0)
        XCTAssertTrue(flush.out.contains("0 deferred"), flush.out)
        XCTAssertNotEqual(try poolctl(fixture, ["pause", "9"]).status, 0, "no worker 9")
        XCTAssertEqual(try poolctl(fixture, ["stop"]).status, 0)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
    }

    func testRequeueThroughTheRunningDaemonChecksEitherJobFormAgain() throws {
        let fixture = try SpoolFixture("requeue")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)"])
        let poold = try startPoold(fixture)
        // A mail-merge job whose second row is short: quarantined by the daemon.
        func merge(_ rows: String) -> [UInt8] {
            Array(("MERGE\r\nMAIL FROM:<list@example.org>\r\nTABLE\r\nEMAIL,NAME\r\n" + rows + ".\r\n"
                   + "DATA\r\nSubject: hi &NAME;\r\n\r\nHello &NAME;\r\n.\r\n").utf8)
        }
        try fixture.drop("A7.MAIL", merge("a@example.com,Ann\r\nb@example.com\r\n"))
        XCTAssertTrue(eventually(timeout: 10) { FileManager.default.fileExists(atPath: fixture.spoolDirectory + "/bad/A7.MAIL.why") })
        let refused = try poolctl(fixture, ["requeue", "A7.MAIL"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("still not a valid job") && refused.err.contains("row 2"), refused.err)
        // Fixed in place, it is taken back and sent.
        try Data(merge("a@example.com,Ann\r\nb@example.com,Bob\r\n")).write(to: URL(fileURLWithPath: fixture.spoolDirectory + "/bad/A7.MAIL"))
        let requeued = try poolctl(fixture, ["requeue", "A7.MAIL"])
        XCTAssertEqual(requeued.status, 0, requeued.err)
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count == 2 })
        XCTAssertEqual(try relay.records().flatMap(\.rcpt_tos).sorted(), ["a@example.com", "b@example.com"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: fixture.spoolDirectory + "/bad/A7.MAIL.why"))
        XCTAssertEqual(try poolctl(fixture, ["stop"]).status, 0)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
    }

    func testTheControlSocketRefusesAPeerWithoutPermission() throws {
        let fixture = try SpoolFixture("peercred")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(freePort())"])
        chmod(fixture.directory, 0o755)
        let poold = try startPoold(fixture)
        let socket = fixture.spoolDirectory + "/.poold.sock"
        let mode = try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o660)
        // The file mode keeps strangers out; open it up to reach the SO_PEERCRED check.
        chmod(socket, 0o666)
        let stranger = try poolctl(fixture, ["pause", "1"], asUser: 65534)
        XCTAssertNotEqual(stranger.status, 0)
        XCTAssertTrue(stranger.err.contains("permission denied for uid 65534"), stranger.err)
        XCTAssertTrue(poold.output.contains("control: refused uid 65534"), poold.output)
        kill(poold.pid, SIGTERM)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
    }
}
