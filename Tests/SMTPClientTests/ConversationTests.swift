import XCTest
@testable import SMTPClient

/// The conversation machine fed whole dialogues without a socket: what it writes, what it
/// reads, and each transaction's result, as a transcript.
final class ConversationTests: XCTestCase {
    static let ok = SMTPReply(250, "2.0.0 ok")
    static let go = SMTPReply(354, "go ahead")
    static let queued = SMTPReply(250, "2.0.0 queued")

    static func request(_ tag: UInt64, _ n: Int, size: Int64 = 100, unstuffed: Int64? = nil) -> TransactionRequest {
        TransactionRequest(tag: TransactionTag(tag),
                           envelope: Envelope(sender: "list@example.org", recipients: (1...n).map { EnvelopeRecipient(address: "r\($0)@example.com") }),
                           wireSize: size, unstuffedSize: unstuffed)
    }

    /// Runs the machine: `submitted` go in first; `later[k]` is submitted when the machine
    /// would read its k-th reply; replies are fed in order until they run out.
    static func transcript(_ policy: ConversationPolicy, _ submitted: [TransactionRequest], _ replies: [SMTPReply],
                           later: [Int: TransactionRequest] = [:], faultAfter: Int? = nil) -> [String] {
        var m = SMTPConversation(policy: policy)
        for r in submitted { m.submit(r) }
        var later = later
        var replies = replies[...]
        var reads = 0
        var lines: [String] = []
        for _ in 0..<1000 {
            let action = m.nextAction()
            switch action {
            case .write(let c): lines.append("C: \(c)")
            case .writeMessage(let tag, let framing):
                lines.append("C: <message \(tag)\(framing == .dotStuffed ? "" : " unstuffed")>")
            case .read:
                if let r = later.removeValue(forKey: reads) {
                    m.submit(r)
                    continue
                }
                if let faultAfter, reads == faultAfter {
                    lines.append("!: garbled")
                    m.fail(.garbled("not SMTP"))
                    continue
                }
                guard let reply = replies.popFirst() else {
                    lines.append("…")
                    return lines
                }
                reads += 1
                lines.append("S: \(reply)")
                m.receive(reply)
            case .result(let r):
                let retry = r.retry == .none ? "" : " retry=\(r.retry)"
                lines.append("= \(r.tag) \(r.outcomes.map(\.kind.rawValue).joined(separator: ","))\(retry)")
            case .idle:
                lines.append("idle")
                return lines
            case .closed(let fault):
                lines.append("closed: \(fault)")
                return lines
            }
        }
        XCTFail("the machine did not settle")
        return lines
    }

    static let pipelined = ConversationPolicy(pipelining: true)
    static let lockstep = ConversationPolicy(pipelining: false)
    static let chunking = ConversationPolicy(pipelining: true, chunking: true, maxInFlight: 3)

    func testAPipelinedTransactionIsOneGroupThenTheMessage() {
        XCTAssertEqual(Self.transcript(Self.pipelined, [Self.request(1, 2)], [Self.ok, Self.ok, Self.ok, Self.go, Self.queued]), [
            "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: RCPT TO:<r2@example.com>", "C: DATA",
            "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 354 go ahead",
            "C: <message #1>", "S: 250 2.0.0 queued", "= #1 delivered,delivered", "idle",
        ])
    }

    func testWithoutPipeliningOneCommandWaitsForItsReply() {
        XCTAssertEqual(Self.transcript(Self.lockstep, [Self.request(1, 2)], [Self.ok, Self.ok, Self.ok, Self.go, Self.queued]), [
            "C: MAIL FROM:<list@example.org>", "S: 250 2.0.0 ok",
            "C: RCPT TO:<r1@example.com>", "S: 250 2.0.0 ok",
            "C: RCPT TO:<r2@example.com>", "S: 250 2.0.0 ok",
            "C: DATA", "S: 354 go ahead", "C: <message #1>", "S: 250 2.0.0 queued", "= #1 delivered,delivered", "idle",
        ])
    }

    func testTheNextEnvelopeGoesWithThePreviousMessageAndItsReplyIsReadFirst() {
        let lines = Self.transcript(Self.pipelined, [Self.request(1, 1), Self.request(2, 1)],
                                    [Self.ok, Self.ok, Self.go, Self.queued, Self.ok, Self.ok, Self.go, Self.queued])
        XCTAssertEqual(lines, [
            "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: DATA",
            "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 354 go ahead",
            "C: <message #1>", "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: DATA",
            "S: 250 2.0.0 queued", "= #1 delivered",
            "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 354 go ahead",
            "C: <message #2>", "S: 250 2.0.0 queued", "= #2 delivered", "idle",
        ])
    }

    func testATransactionSubmittedWhileTheDotIsHeldJoinsItsWrite() {
        let lines = Self.transcript(Self.pipelined, [Self.request(1, 1)], [Self.ok, Self.ok, Self.go, Self.queued, Self.ok, Self.ok, Self.go, Self.queued],
                                    later: [3: Self.request(2, 1)])
        XCTAssertEqual(Array(lines[6...9]), ["C: <message #1>", "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: DATA"])
    }

    func testARefusedDataIsClearedWithRSETBeforeTheNextTransaction() {
        let lines = Self.transcript(Self.pipelined, [Self.request(1, 1), Self.request(2, 1)],
                                    [Self.ok, Self.ok, SMTPReply(451, "4.3.0 later"), Self.ok, Self.ok, Self.ok, Self.go, Self.queued])
        XCTAssertEqual(lines, [
            "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: DATA",
            "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 451 4.3.0 later", "= #1 deferred",
            "C: RSET", "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: DATA",
            "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 250 2.0.0 ok", "S: 354 go ahead",
            "C: <message #2>", "S: 250 2.0.0 queued", "= #2 delivered", "idle",
        ])
    }

    func testNobodyAcceptedMeansNoMessageAndALoneDotWhenTheRelaySaid354Anyway() {
        let refused = SMTPReply(550, "5.1.1 unknown")
        XCTAssertEqual(Self.transcript(Self.pipelined, [Self.request(1, 1)], [Self.ok, refused, SMTPReply(554, "5.5.1 no valid recipients")]).suffix(3),
                       ["S: 554 5.5.1 no valid recipients", "= #1 failed", "idle"])
        XCTAssertEqual(Self.transcript(Self.pipelined, [Self.request(1, 1)], [Self.ok, refused, Self.go, Self.ok]).suffix(5),
                       ["S: 354 go ahead", "C: .", "S: 250 2.0.0 ok", "= #1 failed", "idle"])
        let lockstep = Self.transcript(Self.lockstep, [Self.request(1, 2), Self.request(2, 1)], [Self.ok, refused, refused, Self.ok])
        XCTAssertEqual(lockstep, [
            "C: MAIL FROM:<list@example.org>", "S: 250 2.0.0 ok", "C: RCPT TO:<r1@example.com>", "S: 550 5.1.1 unknown",
            "C: RCPT TO:<r2@example.com>", "S: 550 5.1.1 unknown", "= #1 failed,failed",
            "C: RSET", "S: 250 2.0.0 ok", "C: MAIL FROM:<list@example.org>", "…",
        ])
    }

    func testA452MidRCPTSendsTheRestAgain() {
        let tooMany = SMTPReply(452, "4.5.3 too many recipients")
        XCTAssertEqual(Self.transcript(Self.pipelined, [Self.request(1, 4)], [Self.ok, Self.ok, Self.ok, tooMany, tooMany, Self.go, Self.queued]).suffix(2),
                       ["= #1 delivered,delivered,tooMany,tooMany", "idle"])
        let lockstep = Self.transcript(Self.lockstep, [Self.request(1, 4)], [Self.ok, Self.ok, Self.ok, tooMany, Self.go, Self.queued])
        XCTAssertFalse(lockstep.contains("C: RCPT TO:<r4@example.com>"), "no RCPT after the 452")
        XCTAssertEqual(lockstep.suffix(2), ["= #1 delivered,delivered,tooMany,tooMany", "idle"])
    }

    func testMailRefusedDecidesEveryRecipient() {
        XCTAssertEqual(Self.transcript(Self.lockstep, [Self.request(1, 2)], [SMTPReply(550, "5.7.1 sender refused")]).suffix(2),
                       ["= #1 failed,failed", "idle"])
        XCTAssertEqual(Self.transcript(Self.pipelined, [Self.request(1, 2)], [SMTPReply(451, "later"), SMTPReply(503, "no"), SMTPReply(503, "no"), SMTPReply(503, "no")]).suffix(2),
                       ["= #1 deferred,deferred", "idle"])
    }

    func testA4xxToMAILOnAConnectionThatCarriedMailClosesItForANewOne() {
        let spent = SMTPReply(452, "4.5.3 Too many messages sent")
        let lines = Self.transcript(ConversationPolicy(pipelining: false), [Self.request(1, 1), Self.request(2, 1), Self.request(3, 1)],
                                    [Self.ok, Self.ok, Self.go, Self.queued, spent])
        XCTAssertEqual(lines.suffix(4), ["S: 452 4.5.3 Too many messages sent", "= #2 deferred retry=newConnection",
                                         "= #3 deferred retry=notSent", "closed: the relay refused more mail on this connection: 452 4.5.3 Too many messages sent"])
        // On a fresh connection the same reply is a real deferral.
        XCTAssertEqual(Self.transcript(Self.lockstep, [Self.request(1, 1)], [spent]).suffix(2), ["= #1 deferred", "idle"])
    }

    func test421AtEveryPositionDefersWhatIsUndecidedAndCloses() {
        // MAIL, RCPT ×3 (the third refused), DATA, the final dot.
        let replies = [Self.ok, Self.ok, Self.ok, SMTPReply(550, "5.1.1 no"), Self.go, Self.queued]
        for position in replies.indices {
            var dialogue = Array(replies[..<position])
            dialogue.append(SMTPReply(421, "4.3.2 shutting down"))
            let lines = Self.transcript(Self.pipelined, [Self.request(1, 3), Self.request(2, 1)], dialogue)
            XCTAssertEqual(lines.last, "closed: the relay is closing the connection: 421 4.3.2 shutting down", "421 as reply \(position + 1)")
            let result = lines.first { $0.hasPrefix("= #1") } ?? ""
            let expected = position <= 3 ? "= #1 deferred,deferred,deferred retry=newConnection" : "= #1 deferred,deferred,failed retry=newConnection"
            XCTAssertEqual(result, expected, "421 as reply \(position + 1)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("= #2 deferred retry=") }, "the next transaction ends too: \(lines)")
            XCTAssertFalse(lines.drop { !$0.hasPrefix("S: 421") }.contains { $0.hasPrefix("C:") }, "nothing written after the 421")
        }
    }

    func testAReplyThatIsNotSMTPDefersWithoutARetryNow() {
        let lines = Self.transcript(Self.pipelined, [Self.request(1, 2)], [Self.ok, Self.ok, Self.ok, Self.go], faultAfter: 4)
        XCTAssertEqual(lines.suffix(3), ["!: garbled", "= #1 deferred,deferred", "closed: garbled reply: not SMTP"])
    }

    func testALostConnectionRetriesWhatHadNotSentItsMessageAndDefersWhatHad() {
        var m = SMTPConversation(policy: Self.pipelined)
        m.submit(Self.request(1, 1))
        m.submit(Self.request(2, 1))
        var results: [TransactionResult] = []
        for reply in [Self.ok, Self.ok, Self.go, nil] as [SMTPReply?] {
            while true {
                let action = m.nextAction()
                if case .read = action { break }
                if case .result(let r) = action { results.append(r) }
            }
            if let reply { m.receive(reply) } else { m.fail(.dropped(step: "test")) }
        }
        while case .result(let r) = m.nextAction() { results.append(r) }
        XCTAssertEqual(results.map(\.tag.rawValue), [1, 2])
        XCTAssertEqual(results.map(\.retry), [.none, .newConnection], "#1's message was out; #2 had only its envelope")
    }

    func testWithChunkingTransactionsPipelineWithoutWaitingAndEachLaterOneStartsWithRSET() {
        let lines = Self.transcript(Self.chunking, [Self.request(1, 1, unstuffed: 90), Self.request(2, 1, unstuffed: 80), Self.request(3, 1, unstuffed: 70), Self.request(4, 1, unstuffed: 60)],
                                    [Self.ok, Self.ok, Self.queued, Self.ok, Self.ok, Self.ok, SMTPReply(554, "5.7.1 spam"), Self.ok, Self.ok, Self.ok, Self.queued])
        XCTAssertEqual(Array(lines.prefix(11)), [
            "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: BDAT 90 LAST", "C: <message #1 unstuffed>",
            "C: RSET", "C: MAIL FROM:<list@example.org>", "C: RCPT TO:<r1@example.com>", "C: BDAT 80 LAST", "C: <message #2 unstuffed>",
            "C: RSET", "C: MAIL FROM:<list@example.org>",
        ], "three in flight before the first reply")
        XCTAssertEqual(lines.filter { $0.hasPrefix("=") }, ["= #1 delivered", "= #2 failed", "= #3 delivered"])
        XCTAssertTrue(lines.contains("C: <message #4 unstuffed>"))
        XCTAssertEqual(lines.last, "…", "the fourth waits for its replies")
    }

    func testAMessageOverTheRelaysSizeLimitFailsWithoutBeingSent() {
        let policy = ConversationPolicy(pipelining: true, sizeLimit: 50)
        XCTAssertEqual(Self.transcript(policy, [Self.request(1, 1, size: 100)], []), ["= #1 failed", "idle"])
        var m = SMTPConversation(policy: policy)
        m.submit(Self.request(1, 1, size: 100))
        guard case .result(let r) = m.nextAction() else { return XCTFail("no result") }
        XCTAssertEqual(r.outcomes.first?.status, .messageTooBig)
    }

    func testParametersOfExtensionsNotOfferedAreDroppedAndSIZEIsOurs() {
        let envelope = Envelope(sender: "", senderParameters: ["BODY=8BITMIME", "SIZE=1", "ENVID=x"],
                                recipients: [EnvelopeRecipient(address: "a@b.c", parameters: ["NOTIFY=NEVER"])])
        let policy = ConversationPolicy(pipelining: true, sizeLimit: 0, extensions: ["8BITMIME", "SIZE"])
        let lines = Self.transcript(policy, [TransactionRequest(tag: TransactionTag(1), envelope: envelope, wireSize: 1234)], [])
        XCTAssertEqual(Array(lines.prefix(3)), ["C: MAIL FROM:<> SIZE=1234 BODY=8BITMIME", "C: RCPT TO:<a@b.c>", "C: DATA"])
    }

    func testTheStatusComesFromTheReplysEnhancedCode() {
        XCTAssertEqual(RecipientOutcome.decided(by: SMTPReply(550, "5.1.1 no such user"), to: .recipient).status, EnhancedStatus(5, 1, 1))
        XCTAssertEqual(RecipientOutcome.decided(by: SMTPReply(550, "no such user"), to: .recipient).status, .permanentUnknown)
        XCTAssertEqual(RecipientOutcome(.deferred, origin: .connection(.dropped(step: "x"))).status, .connectionTrouble)
    }

    func testAnIdleProbeIsRSETAndARefusalClosesTheConnection() {
        var m = SMTPConversation(policy: Self.pipelined)
        m.probe()
        XCTAssertEqual(m.nextAction(), .write(.reset))
        XCTAssertEqual(m.nextAction(), .read(.command))
        m.receive(SMTPReply(500, "what"))
        XCTAssertEqual(m.nextAction(), .closed(.resetRefused(SMTPReply(500, "what"))))
    }

    func testATransactionSubmittedAfterQUITIsReturnedNotSent() {
        // Found by the conversation fuzzer: it used to wait forever once the 221 came.
        var m = SMTPConversation(policy: Self.pipelined)
        m.quit()
        XCTAssertEqual(m.nextAction(), .write(.quit))
        XCTAssertEqual(m.nextAction(), .read(.command))
        m.submit(Self.request(1, 1))
        m.receive(SMTPReply(221, "2.0.0 bye"))
        guard case .result(let r) = m.nextAction() else { return XCTFail("no result for the late transaction") }
        XCTAssertEqual(r.tag, TransactionTag(1))
        XCTAssertEqual(r.retry, .notSent)
        XCTAssertEqual(m.nextAction(), .closed(.notConnected("closed after QUIT")))
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
