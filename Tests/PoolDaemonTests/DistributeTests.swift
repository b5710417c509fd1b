// Distribute workers end to end: a primary splits a mail-merge job 1:2:1 (SELF, two peers);
// the shares travel as signed messages through a real MTA (Exim, unpacked under .tools/)
// whose router pipes poold@dist1.test and poold@dist2.test into each peer's
// `poolctl receive`; each peer delivers its share with its own worker and relay. Every row
// arrives once, rendered as the primary would have rendered it. Also: below the threshold
// nothing leaves as a share; a share the relay refuses for good is processed locally; a
// peer's own DIST_FORWARD is ignored for the shares it receives.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import PoolDaemon
import SpoolKit

final class DistributeTests: XCTestCase {
    /// A key file (0600) in `directory`.
    func keyFile(_ directory: String, _ key: [UInt8]) throws -> String {
        let path = directory + "/dist.key"
        FileManager.default.createFile(atPath: path, contents: Data(key), attributes: [.posixPermissions: 0o600])
        return path
    }

    static let key: [UInt8] = (0..<32).map { UInt8(($0 * 37 + 11) % 256) }

    func rows(_ messages: [[UInt8]]) -> [Int: [UInt8]] {
        var found: [Int: [UInt8]] = [:]
        for data in messages {
            if let n = MergeDeliveryTests.row(of: data) { found[n] = data }
        }
        return found
    }

    func testAMergeJobSharedOneTwoOneThroughEximArrivesOnceRenderedAsThePrimaryWould() throws {
        let primary = try SpoolFixture("dist-primary"), peer1 = try SpoolFixture("dist-peer1"), peer2 = try SpoolFixture("dist-peer2")
        let sink1 = try RecordingRelay(in: peer1.directory, arguments: ["--pipelining"]), sink2 = try RecordingRelay(in: peer2.directory, arguments: ["--pipelining"])
        defer { sink1.stop(); sink2.stop() }
        let poolctl = try TestTools.binDirectory + "/poolctl"
        let exim = try EximRelay(in: primary.directory, .init(pipes: [
            "dist1.test": [poolctl, "--config", peer1.configPath, "receive"],
            "dist2.test": [poolctl, "--config", peer2.configPath, "receive"],
        ]))
        defer { exim.stop() }
        try primary.configure(["SMTP_FORWARD_1=2*127.0.0.1:\(exim.port);TLS=none", "HELO_NAME=lists.example.org",
                               "DIST_FORWARD=SELF 2*poold@dist1.test dist2.test", "DIST_SECRET=\(try keyFile(primary.directory, Self.key))"])
        // Peer 1 has a DIST_FORWARD of its own: a received share is never distributed again.
        try peer1.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink1.port)", "HELO_NAME=peer1.test", "DIST_FORWARD=SELF 5*poold@nowhere.test",
                             "DIST_FORWARD_THRESHOLD=10", "DIST_SECRET=\(try keyFile(peer1.directory, Self.key))"])
        try peer2.configure(["SMTP_FORWARD_1=127.0.0.1:\(sink2.port)", "HELO_NAME=peer2.test", "DIST_SECRET=\(try keyFile(peer2.directory, Self.key))"])
        // The peers' MTA runs `poolctl receive` as its own user: the spool and the key are its.
        for peer in [peer1, peer2] {
            try exim.handOver(peer.directory)
            try exim.handOver(peer.spoolDirectory)
            try exim.handOver(peer.directory + "/dist.key", mode: 0o600)
            chmod(peer.configPath, 0o644)
        }
        let one = try peer1.start(), two = try peer2.start()
        let members = MergeDeliveryTests.members(400)
        try primary.drop("M1.MAIL", MergeDeliveryTests.job(members))
        try primary.drain()
        XCTAssertEqual(primary.jobsLeft(), [], "the primary's spool is empty: the job and its share messages left")

        let local = try exim.delivered().filter { !$0.recipients.contains { $0.hasPrefix("poold@") } }
        XCTAssertTrue(eventually(timeout: 60) {
            ((try? sink1.records().count) ?? 0) >= 200 && ((try? sink2.records().count) ?? 0) >= 100 && peer1.jobsLeft().isEmpty && peer2.jobsLeft().isEmpty
        }, "peers: \((try? sink1.records().count) ?? 0) and \((try? sink2.records().count) ?? 0) rows; exim log: \(exim.log.suffix(1500))")
        XCTAssertEqual(one.stop(), 0)
        XCTAssertEqual(two.stop(), 0)

        let here = rows(local.map(\.data)), first = rows(try sink1.records().map(\.data)), second = rows(try sink2.records().map(\.data))
        XCTAssertEqual([here.count, first.count, second.count], [100, 200, 100], "split 1:2:1")
        XCTAssertEqual(Set(here.keys), Set(1...100))
        XCTAssertEqual(Set(first.keys), Set(101...300))
        XCTAssertEqual(Set(second.keys), Set(301...400))
        XCTAssertEqual(try sink1.records().count + sink2.records().count + local.count, 400, "a row arrived twice")
        var wrong: [Int] = []
        for (n, data) in first.merging(second, uniquingKeysWith: { a, _ in a }) where data != MergeDeliveryTests.expected(members[n - 1], number: n, stem: "M1") {
            wrong.append(n)
        }
        XCTAssertEqual(wrong, [], "rows a peer rendered differently from the primary")
        XCTAssertEqual(try sink1.records().filter { $0.rcpt_tos.contains { $0.hasSuffix("nowhere.test") } }.count, 0, "peer 1 distributed a share again")
    }

    func testAJobBelowTheThresholdIsDeliveredWholeByThePrimary() throws {
        let fixture = try SpoolFixture("dist-below")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org",
                               "DIST_FORWARD=SELF poold@dist1.test", "DIST_SECRET=\(try keyFile(fixture.directory, Self.key))"])
        try fixture.drop("M2.MAIL", MergeDeliveryTests.job(MergeDeliveryTests.members(99)))
        try fixture.drain()
        let records = try relay.records()
        XCTAssertEqual(records.count, 99)
        XCTAssertFalse(records.contains { $0.rcpt_tos.contains("poold@dist1.test") }, "a share left a job below the threshold")
    }

    func testAShareTheRelayRefusesForGoodIsProcessedLocally() throws {
        let fixture = try SpoolFixture("dist-refused")
        let relay = try RecordingRelay(in: fixture.directory, arguments: ["--pipelining", "--reject", "poold@"])
        defer { relay.stop() }
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:\(relay.port)", "HELO_NAME=lists.example.org",
                               "DIST_FORWARD=SELF 3*poold@dist1.test", "DIST_SECRET=\(try keyFile(fixture.directory, Self.key))"])
        let members = MergeDeliveryTests.members(200)
        try fixture.drop("M3.MAIL", MergeDeliveryTests.job(members))
        // The peer's share (150 rows) was refused at RCPT: received here, and sent from here.
        try fixture.drain()
        XCTAssertEqual(fixture.jobsLeft(), [])
        XCTAssertEqual(fixture.deferredJobs(), [])
        let found = rows(try relay.records().map(\.data))
        XCTAssertEqual(Set(found.keys), Set(1...200), "rows lost")
        XCTAssertEqual(try relay.records().filter { MergeDeliveryTests.row(of: $0.data) != nil }.count, 200, "a row arrived twice")
        XCTAssertEqual(fixture.spooledDSNs().count, 0, "a refused share is not bounced")
    }
}
