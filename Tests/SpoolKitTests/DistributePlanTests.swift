// The split, table by table: weights 1:2:1 over 10, 11, 12, 100 and 1000 rows, 0*SELF,
// a peer listed twice, empty slices dropped, every count within one of its exact share;
// and the decision: below the threshold or the minimum size, a received share, a plain job
// with several transactions, a stem a share cannot carry — all stay whole.

import Foundation
import XCTest
@testable import SpoolKit

final class DistributePlanTests: XCTestCase {
    private func peers(_ value: String) throws -> DistributeSettings {
        try SiteConfiguration.parse("SPOOL_DIR=/s\nDIST_SECRET=/k\nDIST_FORWARD=\(value)\n", file: "poold.cfg").distribute
    }

    private let a = DistributePeer.remote(address: "poold@a.example")
    private let b = DistributePeer.remote(address: "poold@b.example")

    func testWeightsOneTwoOneCutContiguousSlicesByLargestRemainder() throws {
        let settings = try peers("SELF 2*a.example b.example")
        let cases: [(Int, [Int])] = [(10, [3, 5, 2]), (11, [3, 5, 3]), (12, [3, 6, 3]), (100, [25, 50, 25]), (1000, [250, 500, 250])]
        for (count, sizes) in cases {
            let shares = DistributePlan.split(count: count, kind: .merge, peers: settings.peers)
            XCTAssertEqual(shares.map(\.items.count), sizes, "\(count) rows")
            XCTAssertEqual(shares.map(\.peer), [.local, a, b], "\(count) rows")
            XCTAssertEqual(shares.map(\.index), [1, 2, 3])
            XCTAssertTrue(shares.allSatisfy { $0.count == 3 && $0.kind == .merge })
            XCTAssertEqual(shares.first?.items.lowerBound, 0)
            XCTAssertEqual(shares.last?.items.upperBound, count)
            for (left, right) in zip(shares, shares.dropFirst()) {
                XCTAssertEqual(left.items.upperBound, right.items.lowerBound, "contiguous")
            }
        }
        XCTAssertEqual(DistributePlan.split(count: 10, kind: .bsmtp, peers: settings.peers).map(\.items),
                       [0..<3, 3..<8, 8..<10])
    }

    func testZeroSelfKeepsNothingLocal() throws {
        let settings = try peers("\"0*SELF a.example 2*b.example\"")
        let shares = DistributePlan.split(count: 10, kind: .merge, peers: settings.peers)
        XCTAssertEqual(shares, [PlannedShare(index: 1, count: 2, peer: a, kind: .merge, items: 0..<3),
                                PlannedShare(index: 2, count: 2, peer: b, kind: .merge, items: 3..<10)])
        XCTAssertFalse(shares.contains { $0.isLocal })
    }

    func testAPeerListedTwiceAddsItsWeights() throws {
        let settings = try peers("a.example 2*b.example poold@A.example")
        XCTAssertEqual(settings.peers, [WeightedPeer(.local, weight: 1), WeightedPeer(a, weight: 2), WeightedPeer(b, weight: 2)])
        XCTAssertEqual(DistributePlan.split(count: 100, kind: .merge, peers: settings.peers).map(\.items.count), [20, 40, 40])
    }

    func testEmptySlicesAreDroppedAndTheRestNumberedInOrder() throws {
        let settings = try peers("SELF 2*a.example b.example")
        let shares = DistributePlan.split(count: 2, kind: .bsmtp, peers: settings.peers)
        XCTAssertEqual(shares, [PlannedShare(index: 1, count: 2, peer: .local, kind: .bsmtp, items: 0..<1),
                                PlannedShare(index: 2, count: 2, peer: a, kind: .bsmtp, items: 1..<2)])
        XCTAssertEqual(DistributePlan.split(count: 0, kind: .merge, peers: settings.peers), [])
    }

    func testEveryCountIsWithinOneOfItsExactShareAndTheyAddUp() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let weights = (0..<Int.random(in: 1...8, using: &generator)).map { _ in Int.random(in: 0...1000, using: &generator) }
            let count = Int.random(in: 0...100_000, using: &generator)
            let sizes = DistributePlan.apportion(count, weights: weights)
            let total = weights.reduce(0, +)
            guard total > 0 else {
                XCTAssertEqual(sizes, weights.map { _ in 0 })
                continue
            }
            XCTAssertEqual(sizes.reduce(0, +), count, "\(count) over \(weights)")
            for (size, weight) in zip(sizes, weights) {
                let exact = Double(count) * Double(weight) / Double(total)
                XCTAssertLessThan(abs(Double(size) - exact), 1, "\(count) over \(weights): \(sizes)")
            }
        }
        XCTAssertEqual(DistributePlan.apportion(Int.max, weights: [1000, 1000]), [Int.max / 2 + 1, Int.max / 2], "no overflow")
    }

    // MARK: the decision

    private func merge(rows: Int, parameters: MergeParameters = .init(), template: String = "Subject: &NAME;\n\nHello\n") throws -> SpoolJob {
        let table = "EMAIL,NAME\n" + (1...rows).map { "r\($0)@example.org,N\($0)\n" }.joined()
        return try JobReader.parse(MergeJobWriter.job(sender: "list@example.org", parameters: parameters,
                                                      table: Array(table.utf8), template: Array(template.utf8)))
    }

    private func plain(recipients: Int, transactions: Int = 1, hello: String? = nil, message: String = "Subject: x\n\nbody\n") throws -> SpoolJob {
        var bytes = hello.map { Array("HELO \($0)\r\n".utf8) } ?? []
        for t in 0..<transactions {
            bytes += JobWriter.bsmtp(message: Array(message.utf8), from: "list@example.org",
                                     to: (1...recipients).map { "r\(t).\($0)@example.org" })
        }
        return try JobReader.parse(bytes)
    }

    func testWhatIsDistributedAndWhatStaysWhole() throws {
        var settings = try peers("SELF 2*a.example b.example")
        settings.threshold = 10
        let name = try XCTUnwrap(JobName("A123.MAIL"))
        func decide(_ job: SpoolJob, _ s: DistributeSettings? = nil, name: JobName? = nil) -> DistributeDecision {
            DistributePlan.decide(job: job, name: name ?? JobName("A123.MAIL")!, settings: s ?? settings)
        }
        guard case .distribute(let shares) = decide(try merge(rows: 10)) else { return XCTFail("10 rows at threshold 10") }
        XCTAssertEqual(shares.map(\.items.count), [3, 5, 2])
        guard case .distribute(let plainShares) = decide(try plain(recipients: 12)) else { return XCTFail("12 recipients") }
        XCTAssertEqual(plainShares.map(\.items.count), [3, 6, 3])
        XCTAssertEqual(plainShares.map(\.kind), [.bsmtp, .bsmtp, .bsmtp])

        XCTAssertEqual(decide(try merge(rows: 9)), .keep(.belowThreshold(count: 9, threshold: 10)))
        XCTAssertEqual(decide(try plain(recipients: 9)), .keep(.belowThreshold(count: 9, threshold: 10)))
        XCTAssertEqual(decide(try plain(recipients: 20, transactions: 2)), .keep(.severalTransactions(2)))
        XCTAssertEqual(decide(try merge(rows: 10), DistributeSettings()), .keep(.notForwarding))
        let share = MergeParameters(stem: "A1", firstRow: 5, heloName: "mx.example.org", share: .init(index: 2, count: 3))
        XCTAssertEqual(decide(try merge(rows: 50, parameters: share)), .keep(.isShare), "a received merge share")
        XCTAssertEqual(decide(try plain(recipients: 50, hello: "poold-share A1.x.2of3.4-53@mx.example.org")), .keep(.isShare),
                       "a received plain share")
        guard case .distribute = decide(try plain(recipients: 50, hello: "lists.example.org")) else {
            return XCTFail("an ordinary HELO line is no share mark")
        }
        XCTAssertEqual(decide(try merge(rows: 10), name: JobName("A 1.MAIL")), .keep(.unshareableStem("A 1")))

        settings.minimumSizeKB = 1
        XCTAssertEqual(decide(try merge(rows: 10)), .keep(.belowMinimumSize(size: 20, minimum: 1024)), "both conditions must hold")
        guard case .distribute = decide(try merge(rows: 10, template: "Subject: x\n\n" + String(repeating: "x", count: 1100) + "\n")) else {
            return XCTFail("a 1 kB template at DIST_FORWARD_MINSIZE=1")
        }
        guard case .distribute = decide(try plain(recipients: 10, message: "Subject: x\n\n" + String(repeating: "y", count: 1100) + "\n")) else {
            return XCTFail("a 1 kB message at DIST_FORWARD_MINSIZE=1")
        }
        XCTAssertEqual(name.pool, Pool("A"))
    }
}
