// libFuzzer entry for SMTPClient's conversation machine, compiled with Protocol/*.swift by
// scripts/fuzz. The input is a script: the policy (PIPELINING, CHUNKING, overlap, the
// transactions in flight, SIZE), then operations — submit a transaction, follow the
// machine's next action, fail the connection, QUIT, probe — and, whenever the machine asks
// to read, the relay's reply (250, 354, 421, 452, 451, 550, 554 or one out of turn).
// The harness plays the relay by RFC 2920's rule (replies answer commands in order) and
// checks what a user would lose mail over:
// - every transaction submitted gets exactly one result, with one outcome per recipient,
//   and none that was not submitted (after a final fault, all of them);
// - a recipient is delivered only when its transaction's final dot or BDAT LAST got a 2xx;
// - a message goes after DATA only once that DATA got its 354;
// - nothing is written after a 421 or a fault, and the machine reads only when a reply is
//   owed; without PIPELINING no command is written while another awaits its reply;
// - a result advised "not sent" had nothing of its own written.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = Script(bytes: Array(UnsafeBufferPointer(start: data, count: size)))
    var harness = Harness(policy: ConversationPolicy(
        pipelining: input.next() & 1 == 1, chunking: input.next() & 1 == 1, overlap: input.next() & 1 == 1,
        maxInFlight: 1 + Int(input.next() % 3), sizeLimit: input.next() & 1 == 1 ? Int64(input.next()) * 64 : nil))
    while !input.isEmpty && harness.steps < 20_000 {
        switch input.next() % 10 {
        case 0, 1: harness.submit(recipients: 1 + Int(input.next() % 4), size: Int64(input.next()) * 16, byChunk: input.next() & 1 == 1)
        case 2, 3, 4, 5, 6: harness.follow(&input)
        case 7: if input.next() % 8 == 0 { harness.fail(.dropped(step: "fuzz")) }
        case 8: harness.conversation.quit()
        default: harness.conversation.probe()
        }
    }
    harness.finish()
    return 0
}

struct Script {
    let bytes: [UInt8]
    var at = 0
    var isEmpty: Bool { at >= bytes.count }
    mutating func next() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }
}

struct Harness {
    var conversation: SMTPConversation
    let policy: ConversationPolicy
    var steps = 0
    var nextTag: UInt64 = 1
    /// Recipients per submitted tag.
    var submitted: [TransactionTag: Int] = [:]
    var resulted: Set<TransactionTag> = []
    /// Commands written and not yet answered, in order (RFC 2920: replies come in order).
    var owed: [SMTPCommand] = []
    /// The tag each owed command belongs to (nil: RSET/QUIT of the connection).
    var owedTags: [TransactionTag?] = []
    var wroteFor: Set<TransactionTag> = []
    var goAhead: Set<TransactionTag> = []
    var finalPositive: Set<TransactionTag> = []
    /// A 421 or a fault happened: nothing may be written any more.
    var ended = false

    init(policy: ConversationPolicy) {
        self.policy = policy
        conversation = SMTPConversation(policy: policy)
    }

    mutating func submit(recipients: Int, size: Int64, byChunk: Bool) {
        let tag = TransactionTag(nextTag)
        nextTag += 1
        let envelope = Envelope(sender: "list@example.org",
                                recipients: (0..<recipients).map { EnvelopeRecipient(address: "r\($0)@example.net") })
        submitted[tag] = recipients
        conversation.submit(TransactionRequest(tag: tag, envelope: envelope, wireSize: size, unstuffedSize: byChunk ? size : nil))
    }

    mutating func fail(_ fault: ConnectionFault) {
        ended = true
        conversation.fail(fault)
    }

    /// Follows the machine's actions until it reads (answering from the script) or idles.
    mutating func follow(_ input: inout Script) {
        for _ in 0..<64 {
            steps += 1
            switch conversation.nextAction() {
            case .write(let command):
                precondition(!ended, "written after a 421 or a fault: \(command)")
                precondition(policy.pipelining || owed.isEmpty, "\(command) written while a reply is owed, without PIPELINING")
                let tag = tagOf(command)
                if let tag { wroteFor.insert(tag) }
                owed.append(command)
                owedTags.append(tag)
            case .writeMessage(let tag, let framing):
                precondition(!ended, "a message written after a 421 or a fault")
                precondition(submitted[tag] != nil && !resulted.contains(tag), "a message for \(tag), not in flight")
                wroteFor.insert(tag)
                if case .dotStuffed = framing {
                    // The message and its final dot, which is owed a reply.
                    precondition(goAhead.contains(tag) && !dotted.contains(tag), "a message after DATA without its 354")
                    precondition(policy.pipelining || owed.isEmpty, "a message written while a reply is owed, without PIPELINING")
                    dotted.insert(tag)
                    owed.append(.endOfData)
                    owedTags.append(tag)
                }
            case .read:
                precondition(!owed.isEmpty, "the machine reads with no reply owed")
                answer(input.next())
                return
            case .result(let result):
                check(result)
            case .idle:
                return
            case .closed:
                ended = true
                return
            }
        }
    }

    /// The transaction a command belongs to: MAIL opens the oldest started transaction not
    /// yet opened; RCPT, DATA, BDAT and the dot belong to the last one opened.
    private var opened: [TransactionTag] = []
    private mutating func tagOf(_ command: SMTPCommand) -> TransactionTag? {
        switch command {
        case .reset, .quit:
            return nil
        case .mail:
            let candidates = submitted.keys.filter { !opened.contains($0) && !resulted.contains($0) }.sorted { $0.rawValue < $1.rawValue }
            guard let tag = candidates.first else { preconditionFailure("MAIL with no transaction to open") }
            opened.append(tag)
            return tag
        case .recipient, .data, .chunk:
            return opened.last
        case .endOfData:
            // A dot alone (no recipient was accepted) ends the oldest transaction whose DATA
            // got its 354 and whose dot is not out.
            guard let tag = goAhead.subtracting(dotted).min(by: { $0.rawValue < $1.rawValue }) else {
                preconditionFailure("a final dot with no DATA answered by 354")
            }
            dotted.insert(tag)
            return tag
        }
    }
    private var dotted: Set<TransactionTag> = []

    /// The relay's reply to the oldest command owed.
    private mutating func answer(_ byte: UInt8) {
        let command = owed.removeFirst()
        let tag = owedTags.removeFirst()
        let code: Int
        switch byte % 16 {
        case 0...9:
            if case .data = command { code = 354 } else if case .quit = command { code = 221 } else { code = 250 }
        case 10: code = 421
        case 11: code = 452
        case 12: code = 451
        case 13: code = 550
        case 14: code = 554
        default:
            if case .data = command { code = 250 } else { code = 354 }  // out of turn
        }
        if code == 421 { ended = true }
        if let tag {
            if case .data = command, code == 354 { goAhead.insert(tag) }
            if code / 100 == 2 {
                switch command {
                case .endOfData: finalPositive.insert(tag)
                case .chunk(_, true): finalPositive.insert(tag)
                default: break
                }
            }
        }
        conversation.receive(SMTPReply(code, "\(byte) fuzz"))
    }

    private mutating func check(_ result: TransactionResult) {
        guard let count = submitted[result.tag] else { preconditionFailure("a result for \(result.tag), never submitted") }
        precondition(resulted.insert(result.tag).inserted, "a second result for \(result.tag)")
        precondition(result.outcomes.count == count, "\(result.outcomes.count) outcomes for \(count) recipients")
        if result.outcomes.contains(where: { $0.kind == .delivered }) {
            precondition(finalPositive.contains(result.tag), "delivered without a 2xx to its final dot or BDAT LAST")
        }
        if result.retry == .notSent {
            precondition(!wroteFor.contains(result.tag), "advised not sent, but its commands were written")
        }
    }

    /// The connection ends: every transaction must have had its result.
    mutating func finish() {
        conversation.fail(.dropped(step: "the end of the script"))
        ended = true
        // A transaction submitted after `.closed` gets its result after it: drain until
        // `.closed` comes twice in a row (nothing is queued any more).
        var closedBefore = false
        drain: while true {
            let action = conversation.nextAction()
            if case .closed = action, closedBefore { break drain }
            closedBefore = false
            switch action {
            case .result(let result): check(result)
            case .closed: closedBefore = true
            case .write, .writeMessage: preconditionFailure("written after the connection ended")
            case .read, .idle: preconditionFailure("still waiting after the connection ended")
            }
        }
        for tag in submitted.keys { precondition(resulted.contains(tag), "\(tag) never got a result") }
    }
}
