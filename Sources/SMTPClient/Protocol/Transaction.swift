// One mail transaction as a pure state machine (RFC 5321 §3.3, RFC 2920): it says which
// commands go out, takes the relay's replies in order, and ends with one outcome per
// recipient. The socket loop in `SMTPSession` only moves bytes; every decision about what
// a reply means is here, where tests can feed it dialogues without a network.
//
// With PIPELINING, MAIL, every RCPT and DATA leave as one group and replies are matched by
// count (RFC 2920 §3.1); without it, one command waits for its reply before the next.

public struct Envelope: Sendable, Equatable {
    public var sender: String
    public var senderParameters: [String]
    public var recipients: [EnvelopeRecipient]

    public init(sender: String, senderParameters: [String] = [], recipients: [EnvelopeRecipient]) {
        self.sender = sender
        self.senderParameters = senderParameters
        self.recipients = recipients
    }
}

public struct EnvelopeRecipient: Sendable, Equatable {
    public var address: String
    public var parameters: [String]
    public init(address: String, parameters: [String] = []) {
        self.address = address
        self.parameters = parameters
    }
}

/// What became of one recipient in one attempt.
public struct RecipientOutcome: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// 2xx after the final dot.
        case delivered
        /// 4xx, a dropped connection or a deadline: try again later.
        case deferred
        /// 5xx: never retried.
        case failed
        /// 452 to RCPT: the relay wants fewer recipients per transaction; send again now.
        case tooMany
    }
    public var kind: Kind
    /// The relay's reply, when there was one.
    public var reply: SMTPReply?
    /// What happened, for logs and DSNs: the reply, or a local reason.
    public var diagnostic: String

    public init(_ kind: Kind, reply: SMTPReply) {
        self.kind = kind
        self.reply = reply
        self.diagnostic = reply.description
    }

    public init(_ kind: Kind, reason: String) {
        self.kind = kind
        self.reply = nil
        self.diagnostic = reason
    }

    public var description: String { "\(kind.rawValue): \(diagnostic)" }
}

public struct TransactionMachine: Sendable {
    public enum Phase: Sendable, Equatable { case mail, rcpt(Int), data, bdat, dot, finished }

    public enum Event: Sendable, Equatable {
        /// Wait for more replies (and send what `takeCommands()` gives).
        case needReply
        /// 354 came: stream the message, then the final dot.
        case sendMessage
        /// 354 came but no recipient is left: send the final dot alone to close DATA.
        case sendEmptyMessage
        /// Every recipient has its outcome.
        case finished
    }

    public let envelope: Envelope
    public let pipelining: Bool
    public private(set) var outcomes: [RecipientOutcome?]
    /// The replies still owed, in order.
    private var expected: [Phase] = []
    private var unsent: [(Phase, String)] = []
    private var accepted: [Int] = []
    private var mailAccepted = false
    private var dataRefused = false
    /// True once the relay said 421: the connection must be closed.
    public private(set) var relayClosing = false
    /// True when the relay holds a half transaction that must be cleared with RSET.
    public private(set) var needsReset = false

    /// `size`: the message's size for the SIZE parameter (when the relay offers SIZE).
    /// `extensions`: the relay's EHLO keywords; parameters of extensions it lacks are dropped.
    /// `chunk`: the message's unstuffed size when it goes by `BDAT n LAST` (CHUNKING,
    /// RFC 3030) instead of DATA; the data follows the BDAT command with no wait for 354.
    public init(envelope: Envelope, pipelining: Bool, size: Int64?, extensions: Set<String>, chunk: Int64? = nil) {
        self.envelope = envelope
        self.pipelining = pipelining
        outcomes = Array(repeating: nil, count: envelope.recipients.count)
        var mail = "MAIL FROM:<\(envelope.sender)>"
        if let size { mail += " SIZE=\(size)" }
        for p in envelope.senderParameters where TransactionMachine.keep(p, extensions) { mail += " " + p }
        unsent.append((.mail, mail))
        for (i, r) in envelope.recipients.enumerated() {
            var rcpt = "RCPT TO:<\(r.address)>"
            for p in r.parameters where TransactionMachine.keep(p, extensions) { rcpt += " " + p }
            unsent.append((.rcpt(i), rcpt))
        }
        if let chunk {
            unsent.append((.bdat, "BDAT \(chunk) LAST"))
        } else {
            unsent.append((.data, "DATA"))
        }
    }

    /// Parameters the relay can take: those of extensions it advertised, and unknown ones.
    /// SIZE is always ours to write.
    static func keep(_ parameter: String, _ extensions: Set<String>) -> Bool {
        let keyword = parameter.split(separator: "=", maxSplits: 1).first.map { $0.uppercased() } ?? ""
        switch keyword {
        case "SIZE": return false
        case "BODY": return extensions.contains("8BITMIME") || extensions.contains("BINARYMIME")
        case "SMTPUTF8": return extensions.contains("SMTPUTF8")
        case "RET", "ENVID", "NOTIFY", "ORCPT": return extensions.contains("DSN")
        case "AUTH": return extensions.contains("AUTH")
        default: return true
        }
    }

    /// The phase whose reply is awaited next (it chooses the deadline).
    public var awaiting: Phase { expected.first ?? (outcomesComplete ? .finished : .dot) }

    private var outcomesComplete: Bool { outcomes.allSatisfy { $0 != nil } }

    /// Command lines to write now (without CRLF). With PIPELINING: the whole group at once;
    /// without: one command, and only when no reply is owed.
    public mutating func takeCommands() -> [String] {
        if unsent.isEmpty || (!pipelining && !expected.isEmpty) { return [] }
        let batch = pipelining ? unsent : [unsent[0]]
        unsent.removeFirst(batch.count)
        expected.append(contentsOf: batch.map(\.0))
        return batch.map(\.1)
    }

    /// Takes the next reply owed for the envelope (MAIL, RCPT or DATA).
    public mutating func receive(_ reply: SMTPReply) -> Event {
        guard !expected.isEmpty else { return receiveFinal(reply) }
        let phase = expected.removeFirst()
        if reply.code == 421 { relayClosing = true }
        switch phase {
        case .mail:
            if reply.isPositiveCompletion {
                mailAccepted = true
                needsReset = true
            } else {
                settleAll(with: reply)
                if !pipelining { unsent.removeAll() }
            }
        case .rcpt(let i):
            if !mailAccepted {
                break  // MAIL's reply already decided every recipient
            } else if reply.isPositiveCompletion {
                accepted.append(i)
            } else if reply.code == 452 {
                outcomes[i] = RecipientOutcome(.tooMany, reply: reply)
                if !pipelining {
                    // Stop adding recipients: the rest go in the next transaction.
                    for case (.rcpt(let j), _) in unsent { outcomes[j] = RecipientOutcome(.tooMany, reply: reply) }
                    unsent.removeAll { if case .rcpt = $0.0 { return true } else { return false } }
                }
            } else {
                outcomes[i] = RecipientOutcome(reply.isPermanent ? .failed : .deferred, reply: reply)
            }
            if !pipelining && accepted.isEmpty && unsent.first.map({ $0.0 == .data || $0.0 == .bdat }) == true {
                unsent.removeAll()  // nobody to send to: no DATA or BDAT
            }
        case .data:
            if reply.code == 354 {
                if accepted.isEmpty || !mailAccepted { return .sendEmptyMessage }
                expected.append(.dot)
                return .sendMessage
            }
            dataRefused = true
            for i in accepted { outcomes[i] = RecipientOutcome(reply.isPermanent ? .failed : .deferred, reply: reply) }
        case .bdat:
            // BDAT ... LAST's reply is the final one: it decides the accepted recipients.
            return receiveFinal(reply)
        case .dot, .finished:
            return receiveFinal(reply)
        }
        if relayClosing {
            // 421: the relay is closing the connection; nothing more will be answered.
            settleAll(with: reply)
            expected.removeAll()
            unsent.removeAll()
            return finish()
        }
        return expected.isEmpty && unsent.isEmpty ? finish() : .needReply
    }

    /// After an empty DATA (354 with nobody to deliver to), the final dot's reply is noise.
    public mutating func emptyMessageSent() { needsReset = true }

    /// Takes the reply to the final dot.
    public mutating func receiveFinal(_ reply: SMTPReply) -> Event {
        if let i = expected.firstIndex(of: .dot) { expected.remove(at: i) }
        if reply.code == 421 { relayClosing = true }
        let kind: RecipientOutcome.Kind = reply.isPositiveCompletion ? .delivered : reply.isPermanent ? .failed : .deferred
        for i in accepted where outcomes[i] == nil { outcomes[i] = RecipientOutcome(kind, reply: reply) }
        needsReset = !reply.isPositiveCompletion
        return finish()
    }

    /// The connection failed (dropped, deadline, garbage): every recipient not yet decided,
    /// and every accepted one whose message was not acknowledged, is deferred.
    public mutating func connectionFailed(_ reason: String) {
        for i in outcomes.indices where outcomes[i] == nil {
            outcomes[i] = RecipientOutcome(.deferred, reason: reason)
        }
        expected.removeAll()
        unsent.removeAll()
        relayClosing = true
    }

    private mutating func settleAll(with reply: SMTPReply) {
        let kind: RecipientOutcome.Kind = reply.isPermanent ? .failed : .deferred
        for i in outcomes.indices where outcomes[i] == nil { outcomes[i] = RecipientOutcome(kind, reply: reply) }
    }

    private mutating func finish() -> Event {
        if !outcomesComplete {
            // No DATA was sent (nobody accepted) or DATA was refused: everything is decided
            // except recipients nobody answered for, which cannot happen; be safe anyway.
            for i in outcomes.indices where outcomes[i] == nil {
                outcomes[i] = RecipientOutcome(.deferred, reason: "no reply for this recipient")
            }
        }
        if dataRefused || !accepted.isEmpty && expected.contains(.dot) { needsReset = true }
        return .finished
    }

    /// Outcomes in recipient order (valid after `.finished`).
    public var results: [RecipientOutcome] { outcomes.map { $0! } }
}
