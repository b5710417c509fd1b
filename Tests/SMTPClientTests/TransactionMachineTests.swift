import XCTest
@testable import SMTPClient

/// The transaction state machine fed whole dialogues, with and without PIPELINING.
final class TransactionMachineTests: XCTestCase {
    let ok = SMTPReply(250, "2.1.0 ok")
    let go = SMTPReply(354, "go ahead")

    func envelope(_ n: Int) -> Envelope {
        Envelope(sender: "list@example.org", recipients: (1...n).map { EnvelopeRecipient(address: "r\($0)@example.com") })
    }

    /// Runs a dialogue: the relay's replies in order; returns commands sent and outcomes.
    func run(_ n: Int, pipelining: Bool, _ replies: [SMTPReply], final: SMTPReply? = nil) -> (commands: [[String]], outcomes: [RecipientOutcome.Kind], sentMessage: Bool) {
        var m = TransactionMachine(envelope: envelope(n), pipelining: pipelining, size: nil, extensions: [])
        var groups: [[String]] = []
        var sentMessage = false
        var queue = replies
        loop: while true {
            let c = m.takeCommands()
            if !c.isEmpty { groups.append(c) }
            guard !queue.isEmpty else { break }
            switch m.receive(queue.removeFirst()) {
            case .needReply: continue
            case .finished: break loop
            case .sendMessage:
                sentMessage = true
                _ = m.receiveFinal(final ?? ok)
                break loop
            case .sendEmptyMessage:
                m.emptyMessageSent()
                break loop
            }
        }
        return (groups, m.results.map(\.kind), sentMessage)
    }

    func testPipelinedGroupIsOneWrite() {
        let r = run(3, pipelining: true, [ok, ok, ok, ok, go])
        XCTAssertEqual(r.commands, [["MAIL FROM:<list@example.org>", "RCPT TO:<r1@example.com>", "RCPT TO:<r2@example.com>", "RCPT TO:<r3@example.com>", "DATA"]])
        XCTAssertEqual(r.outcomes, [.delivered, .delivered, .delivered])
        XCTAssertTrue(r.sentMessage)
    }

    func testLockstepSendsOneCommandAtATime() {
        let r = run(2, pipelining: false, [ok, ok, ok, go])
        XCTAssertEqual(r.commands.map(\.count), [1, 1, 1, 1])
        XCTAssertEqual(r.outcomes, [.delivered, .delivered])
    }

    func testMixedRecipientReplies() {
        let r = run(3, pipelining: true, [ok, ok, SMTPReply(451, "4.3.0 later"), SMTPReply(550, "5.1.1 unknown"), go])
        XCTAssertEqual(r.outcomes, [.delivered, .deferred, .failed])
    }

    func testA452AfterTwoRecipientsSendsTheRestAgain() {
        let tooMany = SMTPReply(452, "4.5.3 too many recipients")
        let piped = run(4, pipelining: true, [ok, ok, ok, tooMany, tooMany, go])
        XCTAssertEqual(piped.outcomes, [.delivered, .delivered, .tooMany, .tooMany])
        let lockstep = run(4, pipelining: false, [ok, ok, ok, tooMany, go])
        XCTAssertEqual(lockstep.outcomes, [.delivered, .delivered, .tooMany, .tooMany])
        XCTAssertEqual(lockstep.commands.count, 5, "no RCPT after the 452, then DATA")
    }

    func testMailRefusedDecidesEveryRecipient() {
        XCTAssertEqual(run(2, pipelining: false, [SMTPReply(550, "5.7.1 sender refused")]).outcomes, [.failed, .failed])
        XCTAssertEqual(run(2, pipelining: true, [SMTPReply(451, "later"), SMTPReply(503, "no"), SMTPReply(503, "no"), SMTPReply(503, "no")]).outcomes, [.deferred, .deferred])
    }

    func testDataRefusedAppliesToAcceptedRecipients() {
        let r = run(2, pipelining: true, [ok, ok, SMTPReply(550, "no"), SMTPReply(554, "5.3.0 no thanks")])
        XCTAssertEqual(r.outcomes, [.failed, .failed])
        XCTAssertFalse(r.sentMessage)
    }

    func testNoRecipientAcceptedSendsNoMessage() {
        let piped = run(2, pipelining: true, [ok, SMTPReply(550, "a"), SMTPReply(550, "b"), SMTPReply(554, "no valid recipients")])
        XCTAssertEqual(piped.outcomes, [.failed, .failed])
        let lockstep = run(2, pipelining: false, [ok, SMTPReply(550, "a"), SMTPReply(550, "b")])
        XCTAssertEqual(lockstep.commands.count, 3, "no DATA when nobody was accepted")
        XCTAssertFalse(lockstep.sentMessage)
    }

    func test421AnywhereDefersAndCloses() {
        var m = TransactionMachine(envelope: envelope(2), pipelining: true, size: nil, extensions: [])
        _ = m.takeCommands()
        _ = m.receive(ok)
        XCTAssertEqual(m.receive(SMTPReply(421, "4.3.2 shutting down")), .finished)
        XCTAssertTrue(m.relayClosing)
        XCTAssertEqual(m.results.map(\.kind), [.deferred, .deferred])
    }

    func testFinalDotReplyDecides() {
        XCTAssertEqual(run(1, pipelining: true, [ok, ok, go], final: SMTPReply(451, "later")).outcomes, [.deferred])
        XCTAssertEqual(run(1, pipelining: true, [ok, ok, go], final: SMTPReply(554, "spam")).outcomes, [.failed])
    }

    func testConnectionLostDefersUndecided() {
        var m = TransactionMachine(envelope: envelope(2), pipelining: true, size: nil, extensions: [])
        _ = m.takeCommands()
        _ = m.receive(ok)
        _ = m.receive(SMTPReply(550, "5.1.1 unknown"))
        m.connectionFailed("connection closed")
        XCTAssertEqual(m.results.map(\.kind), [.failed, .deferred])
    }

    func testSizeAndParameters() {
        let env = Envelope(sender: "", senderParameters: ["BODY=8BITMIME", "SIZE=1", "ENVID=x"],
                           recipients: [EnvelopeRecipient(address: "a@b.c", parameters: ["NOTIFY=NEVER"])])
        var m = TransactionMachine(envelope: env, pipelining: true, size: 1234, extensions: ["8BITMIME"])
        XCTAssertEqual(m.takeCommands(), ["MAIL FROM:<> SIZE=1234 BODY=8BITMIME", "RCPT TO:<a@b.c>", "DATA"])
    }

    func testWithChunkingTheMessageFollowsBDATLastInTheSameGroup() {
        var m = TransactionMachine(envelope: envelope(2), pipelining: true, size: nil, extensions: ["CHUNKING"], chunk: 1234)
        XCTAssertEqual(m.takeCommands(), ["MAIL FROM:<list@example.org>", "RCPT TO:<r1@example.com>", "RCPT TO:<r2@example.com>", "BDAT 1234 LAST"])
        XCTAssertEqual(m.receive(ok), .needReply)
        XCTAssertEqual(m.receive(ok), .needReply)
        XCTAssertEqual(m.receive(SMTPReply(550, "5.1.1 no")), .needReply)
        XCTAssertEqual(m.receive(SMTPReply(250, "2.0.0 queued")), .finished)
        XCTAssertEqual(m.results.map(\.kind), [.delivered, .failed])
    }

    func testDotStuffingIsUndoneAcrossAnyChunkBoundary() {
        let stuffed = Array("..one\r\ntwo.\r\n...three\r\n.\r\n\r\n.x".utf8)
        let expected = Array(".one\r\ntwo.\r\n..three\r\n\r\n\r\nx".utf8)
        for cut in 0...stuffed.count {
            var out: [UInt8] = []
            var atLineStart = true
            for piece in [stuffed[..<cut], stuffed[cut...]] {
                Array(piece).withUnsafeBytes { DotStuffing.undo($0, atLineStart: &atLineStart) { out += $0 } }
            }
            XCTAssertEqual(out, expected, "cut at \(cut)")
        }
    }
}
