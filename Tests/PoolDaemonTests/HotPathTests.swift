// The values the delivery hot path is built from, checked without a relay: the index's
// chunked lanes, the transaction's log line written as bytes, and a log line longer than
// its stack buffer.

import Foundation
import XCTest
@testable import PoolDaemon
import SMTPClient
import SpoolKit

final class HotPathTests: XCTestCase {
    func testAChunkedLaneKeepsItsOrderAcrossChunksAndAPutBackGoesFirst() {
        var lane = ChunkedFIFO<Int>()
        let n = ChunkedFIFO<Int>.chunkSize * 2 + 17
        for i in 0..<n { lane.append(i) }
        XCTAssertEqual(lane.count, n)
        XCTAssertEqual(lane.all, Array(0..<n))
        var taken: [Int] = []
        for _ in 0..<(ChunkedFIFO<Int>.chunkSize + 5) { taken.append(lane.popFirst()!) }
        XCTAssertEqual(taken, Array(0..<(ChunkedFIFO<Int>.chunkSize + 5)))
        lane.pushFront(-1)
        lane.pushFront(-2)
        XCTAssertEqual(lane.first, -2)
        XCTAssertEqual(lane.all, [-2, -1] + Array((ChunkedFIFO<Int>.chunkSize + 5)..<n))
        var rest: [Int] = []
        while let x = lane.popFirst() { rest.append(x) }
        XCTAssertEqual(rest, [-2, -1] + Array((ChunkedFIFO<Int>.chunkSize + 5)..<n))
        XCTAssertTrue(lane.isEmpty)
        lane.pushFront(7)
        XCTAssertEqual(lane.all, [7])
    }

    private func line(_ note: TransactionNote) -> String {
        LogLine.withLine { line in
            note.write(into: &line)
            return line.text(from: 0)
        }
    }

    func testTheTransactionLineReadsAsItAlwaysHas() {
        let name = JobName("A00000001.MAIL")!
        let ok = RecipientOutcome.decided(by: SMTPReply(250, "  2.0.0 Ok: queued as 1A2B "), to: .endOfData)
        XCTAssertEqual(line(TransactionNote(job: name, worker: 3, transaction: 1, transactions: 2, part: nil, relay: "relay.example",
                                            recipients: 1, accepted: 1, deferred: 0, failed: 0, again: 0, resent: false, reply: ok)),
                       "job=A00000001.MAIL worker=3 tx=1/2 relay=relay.example rcpts=1 accepted=1 deferred=0 failed=0 reply=\"250 2.0.0 Ok: queued as 1A2B\"")
        let multi = RecipientOutcome.decided(by: SMTPReply(code: 452, lines: ["4.5.3 too", "many"]), to: .recipient)
        XCTAssertEqual(line(TransactionNote(job: name, worker: 1, transaction: 2, transactions: 2, part: 3, relay: "h",
                                            recipients: 100, accepted: 40, deferred: 0, failed: 0, again: 60, resent: false, reply: multi)),
                       "job=A00000001.MAIL worker=1 tx=2/2 part=3 relay=h rcpts=100 accepted=40 deferred=0 failed=0 retry=60 reply=\"\(multi.diagnostic)\"")
        let dropped = RecipientOutcome(.deferred, origin: .connection(.notConnected("not connected to h:25\nreally")))
        XCTAssertEqual(line(TransactionNote(job: name, worker: 1, transaction: 1, transactions: 1, part: nil, relay: "h",
                                            recipients: 2, accepted: 0, deferred: 0, failed: 0, again: 2, resent: true, reply: dropped)),
                       "job=A00000001.MAIL worker=1 tx=1/1 relay=h rcpts=2 accepted=0 deferred=0 failed=0 resent=2 reply=\"not connected to h:25 really\"")
        XCTAssertEqual(line(TransactionNote(job: name, worker: 1, transaction: 1, transactions: 1, part: nil, relay: "h",
                                            recipients: 0, accepted: 0, deferred: 0, failed: 0, again: 0, resent: false, reply: nil)),
                       "job=A00000001.MAIL worker=1 tx=1/1 relay=h rcpts=0 accepted=0 deferred=0 failed=0 reply=\"\"")
    }

    func testALogLineLongerThanItsBufferIsWhole() {
        let long = String(repeating: "x", count: LogLine.stackCapacity - 10) + "\nyz" + String(repeating: "w", count: 50)
        let text = LogLine.withLine { line in
            line.append("job=" as StaticString)
            line.append(long)
            line.append(-42)
            return line.text(from: 0)
        }
        XCTAssertEqual(text, "job=" + long.replacingOccurrences(of: "\n", with: " ") + "-42")
    }
}
