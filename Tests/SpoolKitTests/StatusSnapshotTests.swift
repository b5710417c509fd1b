// The status file is read by a poolctl that may be newer than the daemon that wrote it
// (an upgrade installs both, but the running daemon is the old one until restarted).

import Foundation
import XCTest
import SpoolKit

final class StatusSnapshotTests: XCTestCase {
    func testAStatusFileFromADaemonWithoutTheNewCountersReadsThemAsZero() throws {
        let old = """
            {"daemon": "running", "pid": 42, "pools": {"-": {"queued": 1, "bytes": 10}}, "deferred": 0, "bad": 0,
             "workers": [{"id": 1, "host": "h:25", "pools": "*", "state": "busy", "job": "A1.MAIL", "delivered": 7,
                          "deferred": 1, "failed": 0, "quarantined": 0, "connections": 2, "connection_failures": 1}]}
            """
        let snapshot = try XCTUnwrap(StatusSnapshot.decode(Array(old.utf8)))
        let worker = try XCTUnwrap(snapshot.workers.first)
        XCTAssertEqual(worker.delivered, 7)
        XCTAssertEqual(worker.connectionFailures, 1)
        XCTAssertEqual(worker.job, "A1.MAIL")
        XCTAssertEqual(worker.jobs, 0)
        XCTAssertEqual(worker.bytes, 0)
    }

    func testEveryWorkerFieldSurvivesTheRoundTrip() throws {
        var worker = WorkerStatus(id: 3, host: "relay.example.org:587", pools: "AB", state: .down)
        worker.job = "B00000009.MAIL"; worker.since = 1_763_950_000; worker.peer = "192.0.2.1:587"; worker.pipelining = true
        worker.delivered = 1; worker.deferred = 2; worker.failed = 3; worker.quarantined = 4; worker.connections = 5
        worker.connectionFailures = 6; worker.jobs = 7; worker.bytes = 8_000_000_000; worker.lastError = "connect: refused"
        var snapshot = StatusSnapshot(daemon: "running", workers: [worker])
        snapshot.pid = 9
        let back = try XCTUnwrap(StatusSnapshot.decode(snapshot.encoded()))
        XCTAssertEqual(back.workers, [worker])
        XCTAssertTrue(String(decoding: snapshot.encoded(), as: UTF8.self).contains("\"connection_failures\""))
    }

    func testAWorkerWithoutItsIdentityIsNotAWorker() {
        XCTAssertNil(StatusSnapshot.decode(Array(#"{"daemon":"running","pools":{},"deferred":0,"bad":0,"workers":[{"host":"h:25","pools":"*","state":"idle"}]}"#.utf8)))
    }
}
