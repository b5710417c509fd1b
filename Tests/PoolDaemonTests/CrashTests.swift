// kill -9 at random instants while poold delivers a few hundred jobs to a recording relay,
// restart, repeat; then check the promise of SpoolKit/README.md: nothing lost, and no
// more duplicates than the transactions in flight at the kills (per worker per kill: two
// with DATA, three with BDAT).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SpoolKit

final class CrashTests: XCTestCase {
    func testSIGKILLAtRandomInstantsLosesNothingAndDuplicatesAtMostTheTransactionsInFlight() throws {
        let fixture = try SpoolFixture("crash")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        // With DATA a worker has at most two in flight: the one whose final dot waits for
        // its reply, and the next.
        try torture(fixture, relay, inFlight: 2, jobs: 400, seed: 99)
    }

    func testSIGKILLWithThreeBDATTransactionsInFlightStaysWithinItsBound() throws {
        let fixture = try SpoolFixture("crash-bdat")
        // The fault server records BDAT (aiosmtpd does not speak CHUNKING); nothing else is scripted.
        let relay = try RecordingRelay(in: fixture.directory, script: "fault_server.py", arguments: ["--ext", "CHUNKING"])
        defer { relay.stop() }
        // BDAT is faster: more jobs, so that poold can be killed as often.
        try torture(fixture, relay, inFlight: 3, jobs: 1200, seed: 7)
        XCTAssertTrue(try relay.records().allSatisfy { $0.mode == "BDAT" }, "a message went by DATA")
    }

    private func torture(_ fixture: SpoolFixture, _ relay: RecordingRelay, inFlight: Int, jobs count: Int, seed: UInt64) throws {
        let workers = 3
        try fixture.configure(["SMTP_FORWARD_1=\(workers)*127.0.0.1:\(relay.port)", "MAXBSMTP=40", "SPOOL_RESCAN_INTERVAL=1s"])
        let jobs = GeneratedJobs.mixed(count: count, seed: seed)
        for f in jobs.files { try fixture.drop(f.name, f.bytes) }
        let poold = try TestTools.binDirectory + "/poold"

        var kills = 0
        var rng = SeededRandom(UInt64(getpid()))
        for round in 0..<12 {
            if fixture.jobsLeft().isEmpty && fixture.deferredJobs().isEmpty { break }
            let child = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath],
                                         logTo: fixture.directory + "/poold.log")
            // Between 50 and 550 ms into the run: inside connects, transactions, journal writes.
            usleep(UInt32(50_000 + rng.next() % 500_000))
            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            XCTAssertEqual(child.process.terminationReason, .uncaughtSignal, "round \(round): poold died before the kill: \(child.output.suffix(500))")
            kills += 1
        }
        // A last, undisturbed run delivers whatever is left.
        let last = try ChildProcess("poold", executable: poold, arguments: ["--config", fixture.configPath, "--drain"],
                                    logTo: fixture.directory + "/poold.log")
        XCTAssertEqual(last.waitForExit(timeout: 120), 0, "the final drain did not finish")
        XCTAssertEqual(fixture.jobsLeft(), [], "jobs left in the spool")
        XCTAssertEqual(fixture.deferredJobs(), [], "jobs deferred")
        XCTAssertEqual(fixture.badJobs(), [], "jobs quarantined")

        var seen: [GeneratedJobs.Expected: Int] = [:]
        var transactions: [String: Int] = [:]
        for record in try relay.records() {
            guard let tag = GeneratedJobs.tag(of: record.data) else { XCTFail("untagged message"); continue }
            XCTAssertEqual(record.data, jobs.messages[tag], "content of \(tag)")
            for r in record.rcpt_tos { seen[.init(tag: tag, recipient: r), default: 0] += 1 }
            transactions[tag + record.rcpt_tos.joined(separator: ","), default: 0] += 1
        }
        let lost = jobs.deliveries.filter { seen[$0] == nil }.count
        let duplicatedTransactions = transactions.values.reduce(0) { $0 + ($1 - 1) }
        let duplicatedRecipients = seen.values.reduce(0) { $0 + ($1 - 1) }
        print("crash test (\(inFlight) in flight): \(kills) kills, \(jobs.deliveries.count) recipients, lost \(lost), duplicated transactions \(duplicatedTransactions), duplicated recipients \(duplicatedRecipients)")
        XCTAssertGreaterThanOrEqual(kills, 3, "the spool emptied before poold could be killed often enough")
        XCTAssertEqual(lost, 0, "recipients lost")
        XCTAssertLessThanOrEqual(duplicatedTransactions, kills * workers * inFlight, "more duplicates than transactions in flight")
    }
}
