// The daemon as an operator meets it: it picks up jobs dropped while it runs (inotify),
// stops cleanly on SIGTERM, refuses a bad configuration naming file and line, never runs
// twice on one spool, and poolctl submit/status/check say what they did.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class DaemonTests: XCTestCase {
    func run(_ tool: String, _ arguments: [String], stdin: [UInt8] = []) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestTools.binDirectory + "/" + tool)
        process.arguments = arguments
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        input.fileHandleForWriting.write(Data(stdin))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func testJobsDroppedWhileTheDaemonRunsAreDeliveredAndSIGTERMStopsIt() throws {
        let fixture = try SpoolFixture("watch")
        let sink = try SmtpSink(in: fixture.directory)
        defer { sink.stop() }
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(sink.port)", "SPOOL_RESCAN_INTERVAL=60s"])
        let child = try ChildProcess("poold", executable: try TestTools.binDirectory + "/poold", arguments: ["--config", fixture.configPath],
                                     logTo: fixture.directory + "/poold.log")
        XCTAssertTrue(eventually(timeout: 10) { FileManager.default.fileExists(atPath: fixture.spool.statusPath) }, "poold did not start: \(child.output)")
        let jobs = GeneratedJobs.mixed(count: 50, seed: 21)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }   // seen by inotify, not by a rescan (60 s)
        XCTAssertTrue(eventually(timeout: 20) { fixture.jobsLeft().isEmpty }, "jobs still queued: \(fixture.jobsLeft().count)")
        // poolctl submit (link, not rename) is seen at once too, not at the next rescan.
        let submitted = try run("poolctl", ["--config", fixture.configPath, "submit", "--from", "a@example.org", "--to", "late@example.com"],
                                stdin: Array("Subject: late\n\nhello\n".utf8))
        XCTAssertEqual(submitted.status, 0, submitted.err)
        XCTAssertTrue(eventually(timeout: 5) { fixture.jobsLeft().isEmpty }, "a submitted job waited for the rescan")
        let status = try run("poolctl", ["--config", fixture.configPath, "status", "--json"])
        XCTAssertEqual(status.status, 0)
        let snapshot = try XCTUnwrap(StatusSnapshot.decode(Array(status.out.utf8)), status.out)
        XCTAssertEqual(snapshot.daemon, "running")
        XCTAssertEqual(snapshot.workers.map(\.host), ["127.0.0.1:\(sink.port)", "127.0.0.1:\(sink.port)"])
        XCTAssertTrue(eventually(timeout: 5) {
            let s = (try? FileSystem.readAll(fixture.spool.statusPath)).flatMap(StatusSnapshot.decode)
            return s?.workers.reduce(0) { $0 + $1.delivered } == jobs.deliveries.count + 1
        }, "the workers' counters do not add up to what was delivered")
        kill(child.pid, SIGTERM)
        XCTAssertEqual(child.waitForExit(timeout: 15), 0, "SIGTERM: \(child.output.suffix(400))")
        XCTAssertEqual(try FinishedLog.segments(in: fixture.spool), [], "a clean stop leaves no finished log: every finished job was removed")
        XCTAssertEqual(Set(try sink.messages().flatMap(\.recipients)).count, Set(jobs.deliveries.map(\.recipient)).count + 1)
        let after = try run("poolctl", ["--config", fixture.configPath, "status", "--json"])
        XCTAssertEqual(StatusSnapshot.decode(Array(after.out.utf8))?.daemon, "stopped")
    }

    func testASecondDrainOnAServedSpoolExitsAtOnceWithStatusZero() throws {
        let fixture = try SpoolFixture("twice")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(freePort())"])
        let running = try fixture.start()
        let started = Date()
        let second = try run("poold", ["--config", fixture.configPath, "--drain"])
        XCTAssertEqual(second.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertTrue(second.out.contains("already serves"), second.out)
        XCTAssertEqual(second.out.split(separator: "\n").count, 1, "one line: \(second.out)")
        let third = try run("poold", ["--config", fixture.configPath])
        XCTAssertEqual(third.status, 1, "a second daemon (not a drain) is an error")
        XCTAssertEqual(running.stop(), 0)
    }

    /// For cron on a host whose link is down: the drain does not sit out the back-off.
    func testADrainWhoseRelayIsUnreachableEndsAtOnceAndLosesNothing() throws {
        let fixture = try SpoolFixture("unreachable")
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(freePort())", "SMTP_CONNECT_TIMEOUT=2s"])
        let jobs = GeneratedJobs.mixed(count: 50, seed: 1)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        let started = Date()
        try fixture.drain(timeout: 30)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        let deferred = fixture.deferredJobs().count
        XCTAssertGreaterThan(deferred, 0, "the jobs tried are deferred")
        XCTAssertLessThanOrEqual(deferred, 2, "one try per worker: the rest wait for the next run")
        XCTAssertEqual(fixture.jobsLeft().count + deferred, 50, "every job is still in the spool")
    }

    func testABadConfigurationIsRefusedNamingFileAndLine() throws {
        let fixture = try SpoolFixture("badcfg")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25", "MAXBSMTP=zero"])
        let daemon = try run("poold", ["--config", fixture.configPath])
        XCTAssertEqual(daemon.status, 78)
        XCTAssertTrue(daemon.err.contains("poold.cfg:3:"), daemon.err)
        XCTAssertTrue(daemon.err.contains("MAXBSMTP"), daemon.err)
        let check = try run("poolctl", ["--config", fixture.configPath, "check"])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.err.contains("poold.cfg:3:"), check.err)
    }

    func testSubmitWritesAValidJobAndRefusesBadAddressesWritingNothing() throws {
        let fixture = try SpoolFixture("submit")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25"])
        let message = Array("Subject: hi\n\n.dot first\nbody\n".utf8)
        let ok = try run("poolctl", ["--config", fixture.configPath, "submit", "--pool", "B", "--from", "a@example.org", "--to", "x@example.com"], stdin: message)
        XCTAssertEqual(ok.status, 0, ok.err)
        let name = try XCTUnwrap(ok.out.split(separator: "\n").last.map(String.init))
        XCTAssertEqual(JobName(name)?.pool, Pool("B"))
        XCTAssertNotNil(JobName(name)?.spoolID)
        let job = try BSMTPReader.read(path: fixture.spoolDirectory + "/" + name)
        XCTAssertEqual(job.transactions[0].recipients.map(\.address), ["x@example.com"])
        for bad in [["--from", "a@example.org", "--to", "x y@example.com"], ["--from", "a@example.org", "--to", "x@example.com\r\nRCPT TO:<evil@x.org>"],
                    ["--from", "a\u{0}@example.org", "--to", "x@example.com"], ["--from", "a@example.org", "--to", "nodomain"], ["--from", "a@example.org"]] {
            let refused = try run("poolctl", ["--config", fixture.configPath, "submit"] + bad, stdin: message)
            XCTAssertNotEqual(refused.status, 0, "\(bad)")
            XCTAssertFalse(refused.err.isEmpty)
        }
        let badJob = try run("poolctl", ["--config", fixture.configPath, "submit", "--bsmtp"], stdin: Array("MAIL FROM:<a@b.c>\nDATA\n".utf8))
        XCTAssertEqual(badJob.status, 1)
        XCTAssertTrue(badJob.err.contains("line 2"), badJob.err)
        XCTAssertEqual(fixture.jobsLeft(), [name], "a refused submission wrote nothing")
        let status = try run("poolctl", ["--config", fixture.configPath, "status", "--json"])
        let snapshot = try XCTUnwrap(StatusSnapshot.decode(Array(status.out.utf8)))
        XCTAssertEqual(snapshot.daemon, "stopped")
        XCTAssertEqual(snapshot.pools["B"]?.queued, 1)
        XCTAssertEqual(snapshot.pools["B"]?.bytes, Int64(try FileSystem.status(fixture.spoolDirectory + "/" + name).size))
        XCTAssertEqual(snapshot.workers.first?.host, "127.0.0.1:25")
    }

    func testABadJobGoesToBadWithItsReasonAndTheGoodOnesBesideItAreDelivered() throws {
        let fixture = try SpoolFixture("badjob")
        let sink = try SmtpSink(in: fixture.directory)
        defer { sink.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port)"])
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: Array("Subject: good\r\n\r\nx\r\n".utf8), from: "a@b.org", to: ["c@d.org"]))
        try fixture.drop("A2.MAIL", Array("MAIL FROM:<a@b.org>\nRCPT TO:<c@d.org>\nRCPT TO:<bad address@d.org>\nDATA\nx\n.\n".utf8))
        try fixture.drop("A3.MAIL", JobWriter.bsmtp(message: Array("Subject: good\r\n\r\ny\r\n".utf8), from: "a@b.org", to: ["e@d.org"]))
        try fixture.drain()
        XCTAssertEqual(fixture.badJobs(), ["A2.MAIL"])
        let why = try String(contentsOfFile: fixture.spool.badDirectory + "/A2.MAIL.why", encoding: .utf8)
        XCTAssertTrue(why.contains("line 3"), why)
        XCTAssertTrue(why.contains("space in address"), why)
        XCTAssertEqual(try sink.messages().flatMap(\.recipients).sorted(), ["c@d.org", "e@d.org"])
    }
}

final class PrivilegeTests: XCTestCase {
    func testStartedAsRootWithRunAsPooldDropsToThatUserAndStillDelivers() throws {
        guard geteuid() == 0 else { return XCTFail("dropping privileges needs root: run the suite as root (CI does)") }
        let fixture = try SpoolFixture("runas")
        let relay = try RecordingRelay(in: fixture.directory)
        defer { relay.stop() }
        chmod(fixture.directory, 0o755)
        chown(fixture.spoolDirectory, 65534, 65534)
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "RUN_AS=nobody"])
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: Array("Subject: x\r\n\r\ny\r\n".utf8), from: "a@b.org", to: ["c@d.org"]))
        chown(fixture.spoolDirectory + "/A1.MAIL", 65534, 65534)
        let poold = try ChildProcess("poold", executable: try TestTools.binDirectory + "/poold", arguments: ["--config", fixture.configPath],
                                     logTo: fixture.directory + "/poold.log")
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count == 1 }, poold.output)
        XCTAssertTrue(poold.output.contains("running as nobody (uid 65534"), poold.output)
        let status = try String(contentsOfFile: "/proc/\(poold.pid)/status", encoding: .utf8)
        XCTAssertTrue(status.contains("Uid:\t65534\t65534\t65534\t65534"), status)
        kill(poold.pid, SIGTERM)
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
    }

    func testStartedAsRootWithoutRunAsItWarns() throws {
        guard geteuid() == 0 else { return XCTFail("this test needs root: run the suite as root (CI does)") }
        let fixture = try SpoolFixture("root")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(freePort())"])
        let poold = try ChildProcess("poold", executable: try TestTools.binDirectory + "/poold", arguments: ["--config", fixture.configPath, "--drain"],
                                     logTo: fixture.directory + "/poold.log")
        XCTAssertEqual(poold.waitForExit(timeout: 15), 0)
        XCTAssertTrue(poold.output.contains("running as root: set RUN_AS=user"), poold.output)
    }
}
