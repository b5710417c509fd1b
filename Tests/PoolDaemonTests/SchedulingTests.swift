// Worker scheduling against real relays: pools reach only the relays of the workers that
// serve them; windows and failover follow a clock the test moves; strict round-robin
// earmarks by spool id and hands a dead worker's jobs on; small jobs pass big ones.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class SchedulingTests: XCTestCase {
    func message(_ tag: String, size: Int = 0) -> [UInt8] {
        var text = "Subject: \(tag)\r\nX-Test-Id: \(tag)\r\n\r\nhello\r\n"
        if size > 0 { text += String(repeating: String(repeating: "x", count: 70) + "\r\n", count: size / 72) }
        return JobWriter.bsmtp(message: Array(text.utf8), from: "o@example.org", to: ["\(tag.lowercased())@example.com"])
    }

    func tags(_ relay: RecordingRelay) throws -> [String] { try relay.records().compactMap { GeneratedJobs.tag(of: $0.data) } }
    func tags(_ sink: SmtpSink) throws -> Set<String> { Set(try sink.messages().compactMap { GeneratedJobs.tag(of: $0.body) }) }

    func testJobsInSeveralPoolsReachOnlyTheRelaysOfTheWorkersThatServeThem() throws {
        let fixture = try SpoolFixture("pools")
        let a = try SmtpSink(in: fixture.directory + "/a"), b = try SmtpSink(in: fixture.directory + "/b"), c = try SmtpSink(in: fixture.directory + "/c")
        defer { a.stop(); b.stop(); c.stop() }
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(a.port);POOL=A", "SMTP_FORWARD_2=127.0.0.1:\(b.port);POOL=B",
                               "SMTP_FORWARD_3=127.0.0.1:\(c.port);POOL=C-"])
        var expected: [String: Set<String>] = ["A": [], "B": [], "C": []]
        for (i, pool) in ["A", "B", "C", "-", "A", "B", "C", "-", "A", "B"].enumerated() {
            let tag = "\(pool == "-" ? "D" : pool)\(i)"
            try fixture.drop("\(pool)\(100 + i).MAIL", message(tag))
            expected[pool == "-" ? "C" : pool]!.insert(tag)
        }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(try tags(a), expected["A"])
        XCTAssertEqual(try tags(b), expected["B"])
        XCTAssertEqual(try tags(c), expected["C"], "pool C and the default pool")
    }

    func testOutsideItsWindowAWorkerSendsToItsFailoverHost() throws {
        let fixture = try SpoolFixture("window")
        let first = try RecordingRelay(in: fixture.directory, label: "first"), failover = try RecordingRelay(in: fixture.directory, label: "failover")
        defer { first.stop(); failover.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(first.port)(00:00-05:00);127.0.0.1:\(failover.port)"])
        try fixture.drop("A1.MAIL", message("NOON"))
        try fixture.drain(clock: { TestClock.local(weekday: 4, hour: 12, minute: 0) })
        try fixture.drop("A2.MAIL", message("NIGHT"))
        try fixture.drain(clock: { TestClock.local(weekday: 4, hour: 4, minute: 59) })
        XCTAssertEqual(try tags(failover), ["NOON"])
        XCTAssertEqual(try tags(first), ["NIGHT"])
    }

    func testAClosedWorkerWithoutFailoverLeavesItsPoolsJobsInTheSpool() throws {
        let fixture = try SpoolFixture("closed")
        let relay = try RecordingRelay(in: fixture.directory)
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)(Mon-Fri 08:00-18:00)"])
        try fixture.drop("A1.MAIL", message("WEEKEND"))
        try fixture.drain(clock: { TestClock.local(weekday: 7, hour: 10, minute: 0) })  // Saturday
        XCTAssertEqual(fixture.jobsLeft(), ["A1.MAIL"], "not due: no open worker may take it")
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(try tags(relay), [])
        try fixture.drain(clock: { TestClock.local(weekday: 2, hour: 8, minute: 0) })  // Monday 08:00
        XCTAssertEqual(try tags(relay), ["WEEKEND"])
    }

    /// The window closes while the worker is busy: it finishes the transaction in hand and
    /// stops; the rest waits in the spool.
    func testAWindowThatClosesMidRunStopsTheWorkerAfterTheMessageInHand() throws {
        let fixture = try SpoolFixture("closing")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", "dot:delay:0.3", "--fault-repeat"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)(Wed 09:00-17:59)", "MAXBSMTP=1", "SMTP_DATA_DONE_TIMEOUT=5s"])
        // One job of many one-recipient transactions: each takes 0.3 s at the final dot.
        let recipients = (1...20).map { "r\($0)@example.com" }
        try fixture.drop("A1.MAIL", JobWriter.bsmtp(message: Array("Subject: x\r\n\r\nx\r\n".utf8), from: "o@example.org", to: recipients))
        let clock = TestClock(TestClock.local(weekday: 4, hour: 17, minute: 59))
        let daemon = try fixture.start(clock: clock.function)
        XCTAssertTrue(eventually(timeout: 10) { ((try? relay.records()) ?? []).count >= 2 })
        let beforeClose = try relay.records().count
        clock.set(TestClock.local(weekday: 4, hour: 18, minute: 0))
        // The worker ends the transactions in flight (at most two) and says it is closed.
        XCTAssertTrue(eventually(timeout: 10) { daemon.daemon.board.all.first?.state == .closed }, "\(daemon.daemon.board.all)")
        let sent = try relay.records().count
        XCTAssertLessThanOrEqual(sent, beforeClose + 2, "the worker started transactions after its window closed")
        XCTAssertLessThan(sent, 20)
        XCTAssertEqual(daemon.daemon.board.all.first?.delivered, sent, "every transaction it started has ended")
        XCTAssertEqual(fixture.jobsLeft(), ["A1.MAIL"], "the rest waits in the spool")
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testStrictRoundRobinSendsOddAndEvenSpoolIDsToWorkersOneAndTwo() throws {
        let fixture = try SpoolFixture("rr")
        let one = try RecordingRelay(in: fixture.directory, label: "one"), two = try RecordingRelay(in: fixture.directory, label: "two")
        defer { one.stop(); two.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(one.port)", "SMTP_FORWARD_2=127.0.0.1:\(two.port)", "SMTP_STRICTLY_ROUND_ROBIN=1"])
        for k in 1...12 { try fixture.drop(String(format: "A%08d.MAIL", k), message("K\(k)")) }
        try fixture.drop("A-free.MAIL", message("FREE"))  // no spool id: any worker
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(Set(try tags(one)).subtracting(["FREE"]), Set((1...12).filter { $0 % 2 == 1 }.map { "K\($0)" }))
        XCTAssertEqual(Set(try tags(two)).subtracting(["FREE"]), Set((1...12).filter { $0 % 2 == 0 }.map { "K\($0)" }))
    }

    func testWithWorkerTwosRelayDownItsJobsAreDeliveredByWorkerOneWithinTheWait() throws {
        let fixture = try SpoolFixture("rrdown")
        let one = try RecordingRelay(in: fixture.directory, label: "one")
        defer { one.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(one.port)", "SMTP_FORWARD_2=127.0.0.1:\(freePort())",
                               "SMTP_STRICTLY_ROUND_ROBIN=1", "SMTP_ROUND_ROBIN_WAIT=2s"])
        for k in 1...8 { try fixture.drop(String(format: "A%08d.MAIL", k), message("K\(k)")) }
        let started = Date()
        let daemon = try fixture.start()
        XCTAssertTrue(eventually(timeout: 20) { fixture.jobsLeft().isEmpty }, "worker 2's jobs were stranded")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.5, "they waited for worker 2 first")
        XCTAssertEqual(Set(try tags(one)), Set((1...8).map { "K\($0)" }))
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// Worker 2's relay refuses every connection. Its retries (after 5 s, then 10 s) must
    /// not count as "available again": the earmarked jobs pass to worker 1 once
    /// SMTP_ROUND_ROBIN_WAIT (60 s) has passed since worker 2 first failed. Time runs ten
    /// times faster than real time here, so the wait is 6 s of real time and worker 2's
    /// first retry (5 s real, 50 s of clock) falls inside it — the retry that used to reset
    /// the hand-over's clock.
    func testAnEarmarkedWorkerWhoseRelayStaysDownDoesNotHoldItsJobsPastTheWait() throws {
        let fixture = try SpoolFixture("rrwait")
        let one = try RecordingRelay(in: fixture.directory, label: "one")
        defer { one.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(one.port)", "SMTP_FORWARD_2=127.0.0.1:\(freePort())",
                               "SMTP_STRICTLY_ROUND_ROBIN=1"])
        for k in 1...20 { try fixture.drop(String(format: "A%08d.MAIL", k), message("K\(k)")) }
        let clock = FastClock(rate: 10)
        let daemon = try fixture.start(clock: clock.function)
        XCTAssertTrue(eventually(timeout: 9.5) { fixture.jobsLeft().isEmpty },
                      "after \(Int(clock.elapsed)) s of clock, \(fixture.jobsLeft().count) job(s) still wait for worker 2")
        XCTAssertLessThan(clock.elapsed, 95, "the hand-over waited for more than SMTP_ROUND_ROBIN_WAIT")
        XCTAssertEqual(Set(try tags(one)), Set((1...20).map { "K\($0)" }))
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testASmallMessageQueuedBehindLargeOnesLeavesFirstAndMaxsizeKeepsAFastLane() throws {
        let fixture = try SpoolFixture("bins")
        let relay = try RecordingRelay(in: fixture.directory, label: "bulk"), fast = try RecordingRelay(in: fixture.directory, label: "fast")
        defer { relay.stop(); fast.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "SIZE_BINS=4 64"])
        for i in 1...4 {
            try fixture.drop("A\(i).MAIL", message("BIG\(i)", size: 100_000))
            usleep(10_000)  // older by mtime
        }
        try fixture.drop("A9.MAIL", message("SMALL"))
        try fixture.drain()
        XCTAssertEqual(try tags(relay).first, "SMALL", "the small message went first")

        // MAXSIZE: worker 2 takes only small jobs, so big ones never reach its relay.
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "SMTP_FORWARD_2=127.0.0.1:\(fast.port);MAXSIZE=8"])
        for i in 1...6 { try fixture.drop("B\(i).MAIL", message("B\(i)", size: i % 2 == 0 ? 50_000 : 0)) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        let fastTags = try tags(fast)
        XCTAssertTrue(fastTags.allSatisfy { ["B1", "B3", "B5"].contains($0) }, "a big job reached the MAXSIZE worker: \(fastTags)")
    }
}
