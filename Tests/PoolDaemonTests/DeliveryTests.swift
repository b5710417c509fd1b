// The central path against real relays: jobs dropped in the spool arrive exactly once,
// byte for byte, pipelined or not, and a relay that drops the connection loses nothing.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class DeliveryTests: XCTestCase {
    func testThreeHundredMixedJobsReachSmtpSinkExactlyOnce() throws {
        let fixture = try SpoolFixture("sink")
        let sink = try SmtpSink(in: fixture.directory)
        defer { sink.stop() }
        try fixture.configure(["SMTP_FORWARD_1=3*127.0.0.1:\(sink.port)", "MAXBSMTP=100"])
        let jobs = GeneratedJobs.mixed(count: 300)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(fixture.badJobs(), [])
        let received = try sink.received()
        XCTAssertGreaterThan(jobs.deliveries.count, 10_000 / 2)
        assertExactlyOnce(jobs, received: received)
    }

    func testMixedJobsReachAiosmtpdExactlyOnceWithExactBytes() throws {
        let fixture = try SpoolFixture("aiosmtpd")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(relay.port)", "MAXBSMTP=100"])
        let jobs = GeneratedJobs.mixed(count: 120, seed: 7)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        let received = try relay.received()
        assertExactlyOnce(jobs, received: received)
    }

    func testARelayWithoutPipeliningGetsOneCommandAtATime() throws {
        let fixture = try SpoolFixture("lockstep")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--no-pipelining", "--lockstep-check"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "MAXBSMTP=100"])
        let jobs = GeneratedJobs.mixed(count: 30, seed: 3)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertNil(relay.file("violations.txt"), "commands were pipelined to a relay that did not offer PIPELINING")
        let received = try relay.received()
        assertExactlyOnce(jobs, received: received)
    }

    func testARelayOfferingChunkingGetsBDATWithExactBytes() throws {
        for lockstep in [false, true] {
            let fixture = try SpoolFixture("bdat")
            let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py",
                                           arguments: ["--ext", "CHUNKING"] + (lockstep ? ["--no-pipelining", "--lockstep-check"] : []))
            defer { relay.stop() }
            try fixture.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(relay.port)", "MAXBSMTP=100"])
            let jobs = GeneratedJobs.mixed(count: 40, seed: 17)
            for f in jobs.files { try fixture.drop(f.name, f.bytes) }
            try fixture.drain()
            XCTAssertEqual(fixture.jobsLeft(), [])
            XCTAssertNil(relay.file("violations.txt"))
            let records = try relay.records()
            XCTAssertTrue(records.allSatisfy { $0.mode == "BDAT" }, "a message went by DATA to a relay offering CHUNKING")
            let received = records.map(\.received)
            assertExactlyOnce(jobs, received: received)
        }
    }

    func testSmtpSinkWithoutPipeliningStillGetsEverything() throws {
        let fixture = try SpoolFixture("sinkP")
        let sink = try SmtpSink(in: fixture.directory, pipelining: false)
        defer { sink.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink.port)"])
        let jobs = GeneratedJobs.mixed(count: 24, seed: 5)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        try fixture.drain()
        let received = try sink.received()
        assertExactlyOnce(jobs, received: received)
    }

    /// The relay takes the 5th message and drops the connection before answering the dot:
    /// that job is deferred (the relay may have it: at most that transaction twice), every
    /// other recipient arrives once, and a retry delivers the rest.
    func testARelayThatDropsTheConnectionMidTransactionLosesNothing() throws {
        let fixture = try SpoolFixture("drop")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--drop-after-data", "5"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "RETRY_SCHEDULE=5m"])
        let jobs = GeneratedJobs.mixed(count: 12, seed: 11)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        let clock = TestClock(Date())
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs().count, 1, "the job whose transaction was cut off waits for a retry")
        clock.advance(by: 5 * 60)
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs(), [])
        XCTAssertEqual(fixture.jobsLeft(), [])
        let received = try relay.received()
        assertExactlyOnce(jobs, received: received)
    }

    func testConnectionDroppedMidMessageIsRetriedWholeLater() throws {
        let fixture = try SpoolFixture("midmsg")
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--fault", "body:drop", "--fault-after", "2"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "RETRY_SCHEDULE=5m"])
        let jobs = GeneratedJobs.mixed(count: 6, seed: 13)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        let clock = TestClock(Date())
        try fixture.drain(clock: clock.function)
        // The job whose message was cut off, and the next one if its envelope was already
        // in flight with that message (PIPELINING across transactions).
        XCTAssertTrue((1...2).contains(fixture.deferredJobs().count), "\(fixture.deferredJobs())")
        clock.advance(by: 5 * 60)
        try fixture.drain(clock: clock.function)
        XCTAssertEqual(fixture.deferredJobs(), [])
        let received = try relay.received()
        assertExactlyOnce(jobs, received: received)
    }
}
